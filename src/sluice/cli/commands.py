"""The top-level commands of `sluice`: each one's one-line help and the module that adds it.

The table is all `sluice --help` needs, so it imports nothing but the standard library; a run
of one command imports and registers only that command's module (cli/main.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str
    """The sluice.cli module whose `register` adds the command."""
    help: str


COMMANDS: dict[str, Command] = {
    "up": Command("stack", "start the local stack (NATS, Postgres and the services)"),
    "status": Command("stack", "show what runs in the local stack"),
    "down": Command("stack", "stop the local stack, keeping its state"),
    "data-staging": Command("staging_commands", "stage data: batches of images and videos"),
    "workflows": Command("workflow_commands", "store and show workflow definitions"),
    "batch-processing": Command("job_commands", "run workflows over batches"),
    "models": Command("model_commands", "the model registry: ONNX models by id"),
    "usage": Command("usage_commands", "machine time and credits of your workspace's jobs, by job or by day"),
    "admin": Command("admin_commands", "workspaces and API keys (admin keys only, but show-workspace)"),
    "events": Command("event_commands", "print a job's events, oldest first"),
}
"""In the order `sluice --help` lists them."""


def command_help(name: str) -> str:
    """The one-line help of the top-level command `name` (what its module registers it with)."""
    return COMMANDS[name].help
