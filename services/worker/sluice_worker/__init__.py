"""The Sluice worker: pulls tasks for its machine type, runs their workflow, writes results."""
