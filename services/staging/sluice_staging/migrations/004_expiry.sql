-- Expiry: a batch whose expires_at has passed and that no job holds is purged by the sweep
-- (sluice_staging/expiry.py): its bytes and object rows are deleted and expired_at is set. The
-- row stays, so the id is never reused and the batch can say when it expired.
ALTER TABLE batches ADD COLUMN expired_at timestamptz;
-- A job that uses the batch keeps it until then (HoldBatch; the scheduler renews it).
ALTER TABLE batches ADD COLUMN held_until timestamptz;
-- The job that held it last.
ALTER TABLE batches ADD COLUMN held_by_job text NOT NULL DEFAULT '';

CREATE INDEX batches_to_expire ON batches (expires_at) WHERE expired_at IS NULL;
