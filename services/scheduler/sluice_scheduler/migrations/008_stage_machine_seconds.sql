-- Machine time per stage: the stage counters (migration 007) also keep their tasks' machine time,
-- closed deliveries and open ones (sum of machine_s + open_s), so an event's machine seconds and
-- the runtime cap's check read the job's stage rows instead of summing every task of the job. A
-- progress report that moved only an open delivery's time now writes its stage row too.
ALTER TABLE stages ADD COLUMN machine_s double precision NOT NULL DEFAULT 0;

UPDATE stages s SET machine_s = c.machine_s
FROM (
    SELECT workspace, job_id, stage, coalesce(sum(machine_s + open_s), 0) AS machine_s
    FROM tasks GROUP BY workspace, job_id, stage
) c
WHERE s.workspace = c.workspace AND s.job_id = c.job_id AND s.name = c.stage;

CREATE OR REPLACE FUNCTION stage_counters_insert() RETURNS trigger LANGUAGE plpgsql
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
        items_failed = s.items_failed + d.items_failed,
        machine_s = s.machine_s + d.machine_s
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
            coalesce(sum(items_failed), 0) AS items_failed,
            coalesce(sum(machine_s + open_s), 0) AS machine_s
        FROM new_tasks GROUP BY workspace, job_id, stage
    ) d
    WHERE s.workspace = d.workspace AND s.job_id = d.job_id AND s.name = d.stage;
    RETURN NULL;
END $$;

-- As in 007; a stage whose counts and machine time did not move is not written (the time's
-- delta is a float sum of +x and -x: compared with a tolerance, not with 0).
CREATE OR REPLACE FUNCTION stage_counters_update() RETURNS trigger LANGUAGE plpgsql
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
        items_failed = s.items_failed + d.items_failed,
        machine_s = s.machine_s + d.machine_s
    FROM (
        SELECT workspace, job_id, stage,
            sum(sign * (state = 'pending')::int) AS waiting,
            sum(sign * (state = 'queued')::int) AS queued,
            sum(sign * (state = 'running')::int) AS running,
            sum(sign * (state = 'done')::int) AS done,
            sum(sign * (state = 'failed')::int) AS failed,
            sum(sign * (state = 'interrupted')::int) AS interrupted,
            sum(sign * items_done) AS items_done,
            sum(sign * items_failed) AS items_failed,
            sum(sign * (machine_s + open_s)) AS machine_s
        FROM (
            SELECT 1 AS sign, workspace, job_id, stage, state, items_done, items_failed, machine_s, open_s
            FROM new_tasks
            UNION ALL
            SELECT -1, workspace, job_id, stage, state, items_done, items_failed, machine_s, open_s
            FROM old_tasks
        ) rows
        GROUP BY workspace, job_id, stage
    ) d
    WHERE s.workspace = d.workspace AND s.job_id = d.job_id AND s.name = d.stage
        AND ((d.waiting, d.queued, d.running, d.done, d.failed, d.interrupted, d.items_done, d.items_failed)
            <> (0, 0, 0, 0, 0, 0, 0, 0) OR abs(d.machine_s) > 1e-9);
    RETURN NULL;
END $$;
