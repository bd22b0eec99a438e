-- Batches of staged input (images, videos) and of job output (processing_results, export).
CREATE TABLE batches (
    workspace     text        NOT NULL,
    batch_id      text        NOT NULL,
    type          text        NOT NULL
        CHECK (type IN ('images', 'videos', 'processing_results', 'export')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    source_job_id text        NOT NULL DEFAULT '',
    -- How many objects the batch holds; kept under the batch's row lock so that a new object's
    -- part is assigned without counting the whole batch.
    object_count  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace, batch_id)
);

CREATE INDEX batches_newest ON batches (workspace, created_at DESC, batch_id DESC);

-- The objects of a batch; their bytes live at <store>/<workspace>/<batch_id>/<name>.
CREATE TABLE objects (
    workspace    text    NOT NULL,
    batch_id     text    NOT NULL,
    name         text    COLLATE "C" NOT NULL,  -- byte order: listing pages by name
    size_bytes   bigint  NOT NULL,
    part_index   integer NOT NULL,
    content_type text    NOT NULL DEFAULT 'application/octet-stream',
    PRIMARY KEY (workspace, batch_id, name),
    FOREIGN KEY (workspace, batch_id) REFERENCES batches (workspace, batch_id) ON DELETE CASCADE
);

CREATE INDEX objects_by_part ON objects (workspace, batch_id, part_index, name);
