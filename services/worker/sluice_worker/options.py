"""How a worker process runs: its machine type, slots and timings (from the command line)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from sluice import messaging
from sluice.v1 import common_pb2

MACHINE_TYPES = {"cpu": common_pb2.MACHINE_TYPE_CPU, "gpu": common_pb2.MACHINE_TYPE_GPU}


# Images per workflow run when `--batch-size` is not given. cpu: one to begin with, chosen per
# workflow from how long its images take (`sluice_worker.pace`: 8 for a near-free model, 1 for
# a real detector, as `make bench` measured). gpu: 8, since a batched forward pass is what a GPU
# is for (not measured here: no GPU machine).
DEFAULT_BATCH_SIZES = {"cpu": 1, "gpu": 8}
ADAPTIVE_BATCH = {"cpu": True, "gpu": False}
"""Machine types whose default batch size follows each workflow's time per image."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    machine_type: str = "cpu"
    slots: int = 2
    """Tasks run at once (`--workers-per-machine`)."""
    health_address: str | None = None
    """host:port for the gRPC health service; None serves none."""
    ort_threads: int | None = None
    """ONNX Runtime intra-op threads per model session (`--ort-threads`; models run in-process
    unless `triton_url` is set). None: chosen at start from the slots and the usable CPUs
    (`sluice_worker.threads.choose_ort_threads`)."""
    triton_url: str | None = None
    """host:port of a Triton Inference Server's gRPC endpoint: models run there instead."""
    worker_id: str = field(default_factory=default_worker_id)
    model_cache_dir: Path | None = None
    """Where registered models are downloaded to; None: a folder under the system temp dir."""
    batch_size: int = 0
    """Images of one task per workflow run (`--batch-size`); model calls batch across them.
    0: the machine type's `DEFAULT_BATCH_SIZES`, the one place the default is set (the command
    line and the stack take it from here), adapted per workflow where `ADAPTIVE_BATCH` says so."""
    adaptive_batch: bool = field(default=False, init=False)
    """Whether the batch size follows each workflow's time per image (`sluice_worker.pace`):
    set when no batch size was given, on machine types of `ADAPTIVE_BATCH`."""
    fetch_timeout_s: float = 1.0
    heartbeat_s: float = 2.0
    in_progress_s: float = messaging.IN_PROGRESS_S
    progress_interval_s: float = 0.25
    """At most one progress report per slot this often."""
    drain_timeout_s: float = 20.0
    nak_delay_s: float = 1.0
    """The first retry's delay; each later one doubles it."""

    def __post_init__(self) -> None:
        if self.machine_type not in MACHINE_TYPES:
            raise ValueError(f"machine type must be one of {', '.join(MACHINE_TYPES)}")
        if self.batch_size == 0:
            object.__setattr__(self, "batch_size", DEFAULT_BATCH_SIZES[self.machine_type])
            object.__setattr__(self, "adaptive_batch", ADAPTIVE_BATCH[self.machine_type])
        if self.slots < 1 or self.batch_size < 1:
            raise ValueError("slots and batch size must be at least 1")
        if self.triton_url is not None and (not self.triton_url or "://" in self.triton_url):
            raise ValueError("the Triton address must be host:port")

    def describe_batch(self) -> str:
        """The batch size as a log line or the bench says it."""
        if self.adaptive_batch:
            return f"batch {self.batch_size}, or more for a near-free workflow"
        return f"batch {self.batch_size}"

    @property
    def machine_type_enum(self) -> common_pb2.MachineType:
        return MACHINE_TYPES[self.machine_type]
