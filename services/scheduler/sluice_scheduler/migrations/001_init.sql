CREATE TABLE workflows (
    workspace text NOT NULL,
    workflow_id text NOT NULL,
    version integer NOT NULL,
    definition text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, workflow_id, version)
);

CREATE TABLE jobs (
    workspace text NOT NULL,
    job_id text NOT NULL,
    -- Unique across workspaces: names the job's NATS subjects and its task ids.
    job_uid text NOT NULL UNIQUE,
    workflow_id text NOT NULL,
    workflow_version integer NOT NULL,
    batch_id text NOT NULL,
    state text NOT NULL,
    current_stage text NOT NULL DEFAULT '',
    machine_type text NOT NULL,
    workers_per_machine integer NOT NULL,
    save_image_outputs boolean NOT NULL,
    aggregation_format text NOT NULL,
    max_failure_rate double precision NOT NULL,
    error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, job_id)
);

CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running');

CREATE TABLE stages (
    workspace text NOT NULL,
    job_id text NOT NULL,
    name text NOT NULL,
    position integer NOT NULL,
    state text NOT NULL,
    machine_type text NOT NULL,
    output_batch_id text NOT NULL,
    items_total bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace, job_id, name),
    FOREIGN KEY (workspace, job_id) REFERENCES jobs (workspace, job_id) ON DELETE CASCADE
);

-- One row per task; a result for a task already done is ignored (delivery is at least once).
CREATE TABLE tasks (
    workspace text NOT NULL,
    job_id text NOT NULL,
    task_id text NOT NULL,
    stage text NOT NULL,
    state text NOT NULL,
    item_count bigint NOT NULL,
    items_done bigint NOT NULL DEFAULT 0,
    items_failed bigint NOT NULL DEFAULT 0,
    payload bytea NOT NULL,
    worker_id text NOT NULL DEFAULT '',
    error text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id),
    FOREIGN KEY (workspace, job_id) REFERENCES jobs (workspace, job_id) ON DELETE CASCADE
);

CREATE INDEX tasks_by_job ON tasks (workspace, job_id, stage);
CREATE INDEX tasks_unpublished ON tasks (state) WHERE state = 'pending';
