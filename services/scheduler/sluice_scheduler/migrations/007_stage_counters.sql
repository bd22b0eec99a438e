-- Stage counters: each stage row keeps its tasks' counts by state and their items, so reading a
-- job's progress (GetJob, ListJobs, advance, dispatch) reads one row per stage instead of summing
-- its tasks. Statement triggers on tasks keep them, in the transaction of every task change
-- (results in groups, progress, dispatch, halt, restart, the export task): no code path can
-- forget them. Tasks are deleted only with their job (and its stages), so no delete trigger.
ALTER TABLE stages
    ADD COLUMN tasks_total bigint NOT NULL DEFAULT 0,
    ADD COLUMN tasks_waiting bigint NOT NULL DEFAULT 0,
    ADD COLUMN tasks_queued bigint NOT NULL DEFAULT 0,
    ADD COLUMN tasks_running bigint NOT NULL DEFAULT 0,
    ADD COLUMN tasks_done bigint NOT NULL DEFAULT 0,
    ADD COLUMN tasks_failed bigint NOT NULL DEFAULT 0,
    ADD COLUMN tasks_interrupted bigint NOT NULL DEFAULT 0,
    ADD COLUMN items_done bigint NOT NULL DEFAULT 0,
    ADD COLUMN items_failed bigint NOT NULL DEFAULT 0;

UPDATE stages s SET
    tasks_total = c.total,
    tasks_waiting = c.waiting,
    tasks_queued = c.queued,
    tasks_running = c.running,
    tasks_done = c.done,
    tasks_failed = c.failed,
    tasks_interrupted = c.interrupted,
    items_done = c.items_done,
    items_failed = c.items_failed
FROM (
    SELECT workspace, job_id, stage,
        count(*) AS total,
        count(*) FILTER (WHERE state = 'pending') AS waiting,
        count(*) FILTER (WHERE state = 'queued') AS queued,
        count(*) FILTER (WHERE state = 'running') AS running,
        count(*) FILTER (WHERE state = 'done') AS done,
        count(*) FILTER (WHERE state = 'failed') AS failed,
        count(*) FILTER (WHERE state = 'interrupted') AS interrupted,
        coalesce(sum(items_done), 0) AS items_done,
        coalesce(sum(items_failed), 0) AS items_failed
    FROM tasks GROUP BY workspace, job_id, stage
) c
WHERE s.workspace = c.workspace AND s.job_id = c.job_id AND s.name = c.stage;

-- New tasks are pending, with no items done.
CREATE FUNCTION stage_counters_insert() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE stages s SET
        tasks_total = s.tasks_total + d.total,
        tasks_waiting = s.tasks_waiting + d.waiting,
        tasks_queued = s.tasks_queued + d.queued,
        tasks_running = s.tasks_running + d.running,
        tasks_done = s.tasks_done + d.done,
        tasks_failed = s.tasks_failed + d.failed,
        tasks_interrupted = s.tasks_interrupted + d.interrupted,
        items_done = s.items_done + d.items_done,
        items_failed = s.items_failed + d.items_failed
    FROM (
        SELECT workspace, job_id, stage,
            count(*) AS total,
            count(*) FILTER (WHERE state = 'pending') AS waiting,
            count(*) FILTER (WHERE state = 'queued') AS queued,
            count(*) FILTER (WHERE state = 'running') AS running,
            count(*) FILTER (WHERE state = 'done') AS done,
            count(*) FILTER (WHERE state = 'failed') AS failed,
            count(*) FILTER (WHERE state = 'interrupted') AS interrupted,
            coalesce(sum(items_done), 0) AS items_done,
            coalesce(sum(items_failed), 0) AS items_failed
        FROM new_tasks GROUP BY workspace, job_id, stage
    ) d
    WHERE s.workspace = d.workspace AND s.job_id = d.job_id AND s.name = d.stage;
    RETURN NULL;
END $$;

-- An update adds what its rows are now and takes away what they were; a stage whose counts did
-- not move (a progress report that changed only machine time) is not written, nor locked.
CREATE FUNCTION stage_counters_update() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE stages s SET
        tasks_waiting = s.tasks_waiting + d.waiting,
        tasks_queued = s.tasks_queued + d.queued,
        tasks_running = s.tasks_running + d.running,
        tasks_done = s.tasks_done + d.done,
        tasks_failed = s.tasks_failed + d.failed,
        tasks_interrupted = s.tasks_interrupted + d.interrupted,
        items_done = s.items_done + d.items_done,
        items_failed = s.items_failed + d.items_failed
    FROM (
        SELECT workspace, job_id, stage,
            sum(sign * (state = 'pending')::int) AS waiting,
            sum(sign * (state = 'queued')::int) AS queued,
            sum(sign * (state = 'running')::int) AS running,
            sum(sign * (state = 'done')::int) AS done,
            sum(sign * (state = 'failed')::int) AS failed,
            sum(sign * (state = 'interrupted')::int) AS interrupted,
            sum(sign * items_done) AS items_done,
            sum(sign * items_failed) AS items_failed
        FROM (
            SELECT 1 AS sign, workspace, job_id, stage, state, items_done, items_failed FROM new_tasks
            UNION ALL
            SELECT -1, workspace, job_id, stage, state, items_done, items_failed FROM old_tasks
        ) rows
        GROUP BY workspace, job_id, stage
    ) d
    WHERE s.workspace = d.workspace AND s.job_id = d.job_id AND s.name = d.stage
        AND (d.waiting, d.queued, d.running, d.done, d.failed, d.interrupted, d.items_done, d.items_failed)
            <> (0, 0, 0, 0, 0, 0, 0, 0);
    RETURN NULL;
END $$;

CREATE TRIGGER tasks_counted_on_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION stage_counters_insert();

CREATE TRIGGER tasks_counted_on_update AFTER UPDATE ON tasks
    REFERENCING OLD TABLE AS old_tasks NEW TABLE AS new_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION stage_counters_update();
