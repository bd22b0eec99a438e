"""How many ONNX Runtime intra-op threads each model session of a worker gets.

A worker's task slots share one session per model, and each slot's call runs on the calling
thread plus the session's intra-op pool. With one thread per core per session (ONNX Runtime's
own default) two busy slots run twice as many threads as there are cores, which fight for them.
So unless `--ort-threads` says otherwise, a session gets the usable CPUs divided among the
slots: max(1, usable_cpus // slots), the CPUs counted with the container's quota
(`sluice.runtime.usable_cpus`).

The rule is the same for every machine type. A GPU worker's models run on a Triton server
(`--triton-url`), where these threads are unused; were an in-process session given the CUDA or
TensorRT execution provider (today they run on the CPU provider), the intra-op threads would
only serve the few operators left on the CPU, so the count would matter little there either.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.runtime import usable_cpus


@dataclass(frozen=True)
class OrtThreads:
    """The thread count chosen, and what it was chosen from."""

    per_session: int
    slots: int
    usable_cpus: int | None = None
    """The CPUs counted when the count was chosen; None when `--ort-threads` gave it."""

    def describe(self) -> str:
        """One line for the worker's log."""
        if self.usable_cpus is None:
            return f"ort threads {self.per_session} per session (--ort-threads)"
        return (
            f"ort threads {self.per_session} per session ({self.usable_cpus} usable cpus, {self.slots} slots)"
        )


def choose_ort_threads(requested: int | None, slots: int, cpus: int | None = None) -> OrtThreads:
    """`requested` when given, else max(1, cpus // slots), `cpus` defaulting to the usable CPUs."""
    if slots < 1:
        raise ValueError("slots must be at least 1")
    if requested is not None:
        if requested < 1:
            raise ValueError("ORT threads must be at least 1")
        return OrtThreads(requested, slots)
    cpus = usable_cpus() if cpus is None else cpus
    return OrtThreads(max(1, cpus // slots), slots, cpus)
