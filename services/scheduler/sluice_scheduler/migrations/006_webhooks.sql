-- Webhooks: where a job's events are POSTed, and the outbox they wait in until delivered.
ALTER TABLE jobs ADD COLUMN notifications_url text NOT NULL DEFAULT '';

-- One row per event to deliver; a job's rows go out in id order, each after the one before
-- it was delivered or given up (sluice.webhooks).
CREATE TABLE webhook_outbox (
    id bigserial PRIMARY KEY,
    workspace text NOT NULL,
    job_id text NOT NULL,
    event_id text NOT NULL UNIQUE,
    kind text NOT NULL,
    url text NOT NULL,
    event bytea NOT NULL,  -- a serialized sluice.v1.Event
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_result text NOT NULL DEFAULT '',
    delivered_at timestamptz,
    given_up_at timestamptz,
    FOREIGN KEY (workspace, job_id) REFERENCES jobs (workspace, job_id) ON DELETE CASCADE
);
CREATE INDEX webhook_outbox_open ON webhook_outbox (workspace, job_id, id)
    WHERE delivered_at IS NULL AND given_up_at IS NULL;
