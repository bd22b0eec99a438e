"""What a group of task results does to the tasks' rows: a pure function, applied in arrival order.

The results loop takes results in groups (up to a few hundred), locks their tasks' rows once,
applies every result here in order, then writes the changed rows back in one statement
(task_records.py). Applying them in order keeps the rules of one result at a time, even when a
group holds two results of one task (a redelivery, a stop and then the finish):

- A result seen twice changes nothing the second time (its delivery is closed).
- A delivery's time is added once, by machine type; another delivery still open (its worker
  died) is closed into the task's time first.
- An ok result finishes the task whatever attempt it came from (its output is whole); a failure
  or a stop counts only for the current attempt; a stop of a task its job still wants sends it
  back to pending; a stop of an interrupted task records how far it got.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.v1 import common_pb2, tasks_pb2

FINISHED = ("done", "failed")


@dataclass
class TaskRow:
    """The columns of a task row that a result can change, and what identifies the task."""

    task_id: str
    workspace: str
    job_id: str
    stage: str
    state: str
    item_count: int
    attempt: int
    items_done: int
    items_failed: int
    worker_id: str
    error: str
    machine_s: float
    cpu_s: float
    gpu_s: float
    open_s: float
    open_delivery: str
    open_machine: str
    deliveries: int
    touched: bool = False
    """The task's state or items changed (its updated_at moves)."""


@dataclass(frozen=True)
class RecordedResult:
    """What one result did: the task's job and stage, whether it finished the task, its state."""

    workspace: str
    job_id: str
    stage: str
    first: bool
    state: str


def delivery_key(worker_id: str, delivery: int) -> str:
    return f"{worker_id}/{delivery}"


def machine_name(machine_type: common_pb2.MachineType) -> str:
    """The machine type a slot's time is charged to: gpu, or cpu (export slots included)."""
    return "gpu" if machine_type == common_pb2.MACHINE_TYPE_GPU else "cpu"


def _by_machine(seconds: float, machine: str) -> tuple[float, float]:
    """(cpu seconds, gpu seconds) of `seconds` on `machine`."""
    return (0.0, seconds) if machine == "gpu" else (seconds, 0.0)


def next_state(state: str, result: tasks_pb2.TaskResult, current: bool) -> str | None:
    """The task's state after `result`; None when the result changes nothing."""
    if state in FINISHED:
        return None
    if result.ok and not result.stopped:
        return "done"
    if not current:
        return None
    if result.stopped:
        return None if state == "interrupted" else "pending"
    return "failed"


def apply_result(row: TaskRow, result: tasks_pb2.TaskResult) -> RecordedResult:
    """Change `row` as `result` says (in place) and say what it did."""
    key = delivery_key(result.worker_id, result.delivery)
    closed = row.open_delivery == f"closed:{key}"
    if not closed:
        other_open = row.open_delivery not in ("", key) and not row.open_delivery.startswith("closed:")
        carried = row.open_s if other_open else 0.0
        duration = max(result.duration_s, 0.0)
        carried_cpu, carried_gpu = _by_machine(carried, row.open_machine)
        cpu, gpu = _by_machine(duration, machine_name(result.machine_type))
        row.machine_s += carried + duration
        row.cpu_s += carried_cpu + cpu
        row.gpu_s += carried_gpu + gpu
        row.open_s = 0.0
        row.open_delivery = f"closed:{key}"
        row.deliveries = max(row.deliveries, result.delivery)
    state = row.state
    current = (result.attempt or 1) == row.attempt
    new_state = next_state(state, result, current)
    if new_state is None:
        if not closed and result.stopped and current and state == "interrupted":
            row.items_done, row.items_failed = result.items_done, result.items_failed
        return RecordedResult(row.workspace, row.job_id, row.stage, False, state)
    items_done, items_failed = result.items_done, result.items_failed
    if new_state == "failed":
        items_done = items_failed = row.item_count
    if new_state == "pending":
        items_done = items_failed = 0
    row.state, row.items_done, row.items_failed = new_state, items_done, items_failed
    row.worker_id, row.error = result.worker_id, result.error
    row.touched = True
    return RecordedResult(row.workspace, row.job_id, row.stage, new_state in FINISHED, new_state)
