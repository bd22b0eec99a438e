-- Usage per stage: the stage counters (migrations 007, 008) also keep their tasks' machine time by
-- machine type (cpu_s, gpu_s: closed deliveries plus the open one on its machine type, as
-- usage.py's CPU_SECONDS and GPU_SECONDS sum them per task), so GetJob's usage reads the job's stage
-- rows instead of summing every task of the job (20 ms a call for a job of 20,000 tasks). And the
-- tasks GetJob lists (running, failed, interrupted) get an index of their own, so listing them
-- no longer walks every task of the job either.
ALTER TABLE stages ADD COLUMN cpu_s double precision NOT NULL DEFAULT 0,
    ADD COLUMN gpu_s double precision NOT NULL DEFAULT 0;

UPDATE stages s SET cpu_s = c.cpu_s, gpu_s = c.gpu_s
FROM (
    SELECT workspace, job_id, stage,
        coalesce(sum(cpu_s + CASE WHEN open_machine = 'gpu' THEN 0 ELSE open_s END), 0) AS cpu_s,
        coalesce(sum(gpu_s + CASE WHEN open_machine = 'gpu' THEN open_s ELSE 0 END), 0) AS gpu_s
    FROM tasks GROUP BY workspace, job_id, stage
) c
WHERE s.workspace = c.workspace AND s.job_id = c.job_id AND s.name = c.stage;

CREATE INDEX tasks_notable ON tasks (workspace, job_id, task_id)
    WHERE state IN ('running', 'failed', 'interrupted');

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
        machine_s = s.machine_s + d.machine_s,
        cpu_s = s.cpu_s + d.cpu_s,
        gpu_s = s.gpu_s + d.gpu_s
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
            coalesce(sum(machine_s + open_s), 0) AS machine_s,
            coalesce(sum(cpu_s + CASE WHEN open_machine = 'gpu' THEN 0 ELSE open_s END), 0) AS cpu_s,
            coalesce(sum(gpu_s + CASE WHEN open_machine = 'gpu' THEN open_s ELSE 0 END), 0) AS gpu_s
        FROM new_tasks GROUP BY workspace, job_id, stage
    ) d
    WHERE s.workspace = d.workspace AND s.job_id = d.job_id AND s.name = d.stage;
    RETURN NULL;
END $$;

-- As in 008; a stage whose counts and times did not move is not written (the times' deltas are
-- float sums of +x and -x: compared with a tolerance, not with 0).
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
        machine_s = s.machine_s + d.machine_s,
        cpu_s = s.cpu_s + d.cpu_s,
        gpu_s = s.gpu_s + d.gpu_s
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
            sum(sign * (machine_s + open_s)) AS machine_s,
            sum(sign * (cpu_s + CASE WHEN open_machine = 'gpu' THEN 0 ELSE open_s END)) AS cpu_s,
            sum(sign * (gpu_s + CASE WHEN open_machine = 'gpu' THEN open_s ELSE 0 END)) AS gpu_s
        FROM (
            SELECT 1 AS sign, workspace, job_id, stage, state, items_done, items_failed, machine_s,
                open_s, cpu_s, gpu_s, open_machine
            FROM new_tasks
            UNION ALL
            SELECT -1, workspace, job_id, stage, state, items_done, items_failed, machine_s,
                open_s, cpu_s, gpu_s, open_machine
            FROM old_tasks
        ) rows
        GROUP BY workspace, job_id, stage
    ) d
    WHERE s.workspace = d.workspace AND s.job_id = d.job_id AND s.name = d.stage
        AND ((d.waiting, d.queued, d.running, d.done, d.failed, d.interrupted, d.items_done, d.items_failed)
            <> (0, 0, 0, 0, 0, 0, 0, 0)
            OR abs(d.machine_s) > 1e-9 OR abs(d.cpu_s) > 1e-9 OR abs(d.gpu_s) > 1e-9);
    RETURN NULL;
END $$;
