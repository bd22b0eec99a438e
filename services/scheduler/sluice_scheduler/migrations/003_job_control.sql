-- Job control: attempts, runtime caps, parallelism and priority; task machine time; logs.
ALTER TABLE jobs ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN max_runtime_s double precision NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN max_parallel_tasks integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN last_dispatch_at timestamptz;
ALTER TABLE jobs ADD COLUMN started_at timestamptz;
ALTER TABLE jobs ADD COLUMN ended_at timestamptz;
ALTER TABLE jobs ADD COLUMN halted_at timestamptz;
-- 0 in workers_per_machine now means: every slot the workers offer.
ALTER TABLE jobs ALTER COLUMN workers_per_machine SET DEFAULT 0;

-- Task states: pending (written, not yet published), queued, running, done, failed, interrupted.
UPDATE tasks SET state = 'queued' WHERE state = 'published';
DROP INDEX IF EXISTS tasks_unpublished;
CREATE INDEX tasks_pending ON tasks (workspace, job_id, task_id) WHERE state = 'pending';
CREATE INDEX tasks_in_flight ON tasks (workspace, job_id) WHERE state IN ('queued', 'running');

-- Machine time: closed deliveries summed, plus the open one as its slot last reported it.
ALTER TABLE tasks ADD COLUMN machine_s double precision NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN open_s double precision NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN open_delivery text NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN deliveries integer NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN attempt integer NOT NULL DEFAULT 1;
-- How many times the scheduler published it in this attempt (names its Nats-Msg-Id).
ALTER TABLE tasks ADD COLUMN publications integer NOT NULL DEFAULT 0;

CREATE TABLE logs (
    id bigserial PRIMARY KEY,
    workspace text NOT NULL,
    job_id text NOT NULL,
    time timestamptz NOT NULL DEFAULT now(),
    severity smallint NOT NULL,
    source text NOT NULL,
    task_id text NOT NULL DEFAULT '',
    message text NOT NULL,
    FOREIGN KEY (workspace, job_id) REFERENCES jobs (workspace, job_id) ON DELETE CASCADE
);
CREATE INDEX logs_by_job ON logs (workspace, job_id, id);
CREATE INDEX jobs_by_created ON jobs (workspace, created_at DESC, job_id DESC);
