"""The scheduler service: workflows, jobs, stages and tasks."""
