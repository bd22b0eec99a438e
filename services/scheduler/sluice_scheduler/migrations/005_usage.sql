-- Usage: machine time by machine type. machine_s stays the closed deliveries' sum; cpu_s and
-- gpu_s split it by the machine type the slot reported (an export slot counts as cpu), and
-- open_machine is the machine type of the open delivery, whose time is open_s.
ALTER TABLE tasks ADD COLUMN cpu_s double precision NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN gpu_s double precision NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN open_machine text NOT NULL DEFAULT 'cpu';

-- Time recorded before this migration is charged to the machine type of the task's stage.
UPDATE tasks t SET
    cpu_s = CASE WHEN s.machine_type = 'gpu' THEN 0 ELSE t.machine_s END,
    gpu_s = CASE WHEN s.machine_type = 'gpu' THEN t.machine_s ELSE 0 END,
    open_machine = CASE WHEN s.machine_type = 'gpu' THEN 'gpu' ELSE 'cpu' END
FROM stages s
WHERE s.workspace = t.workspace AND s.job_id = t.job_id AND s.name = t.stage;

-- 'job', or 'estimate': the sample an EstimateJob runs (hidden from ListJobs, no events, no
-- output batches; its machine time counts in usage).
ALTER TABLE jobs ADD COLUMN kind text NOT NULL DEFAULT 'job';
