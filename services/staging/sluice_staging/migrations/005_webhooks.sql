-- Webhooks: where a batch's events are POSTed, and the outbox they wait in until delivered.
ALTER TABLE batches ADD COLUMN notifications_url text NOT NULL DEFAULT '';

-- One row per event to deliver; a batch's rows go out in id order, each after the one before
-- it was delivered or given up (sluice.webhooks). The row keeps the attempts and the last
-- result; it outlives its batch (a batch_expired event is delivered after the batch is gone).
CREATE TABLE webhook_outbox (
    id bigserial PRIMARY KEY,
    workspace text NOT NULL,
    batch_id text NOT NULL,
    event_id text NOT NULL UNIQUE,
    kind text NOT NULL,
    url text NOT NULL,
    event bytea NOT NULL,  -- a serialized sluice.v1.Event
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_result text NOT NULL DEFAULT '',
    delivered_at timestamptz,
    given_up_at timestamptz
);
CREATE INDEX webhook_outbox_open ON webhook_outbox (workspace, batch_id, id)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
