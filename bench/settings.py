"""Worker settings: the same jobs on a worker started with other ORT threads and batch sizes.

For each setting the stack is taken down and brought up again in the same state folder with
`sluice up --ort-threads T --worker-batch-size B` (the batches, workflows and models stay), then
each workflow runs one job over its staged batch; the figure is the processing stage (submission
to items_done == items_total), on a worker that starts cold each time, as in the main rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.mesh import JobRun, run_job
from bench.report import aligned, fmt, ratio
from bench.stack import LocalStack, up_options
from bench.workflows import BenchWorkflow

DEFAULT = "-"


@dataclass(frozen=True)
class WorkerSetting:
    ort_threads: int | None
    """None: the worker chooses."""
    batch_size: int | None
    """None: the worker's default."""

    @property
    def label(self) -> str:
        threads = "worker's choice" if self.ort_threads is None else str(self.ort_threads)
        batch = "worker's default" if self.batch_size is None else str(self.batch_size)
        return f"ORT threads {threads}, batch {batch}"


def parse_settings(text: str) -> list[WorkerSetting]:
    """ "1:1,1:8" -> ORT threads 1 at batch 1, then at batch 8; "-" leaves one to the worker;
    "" or "none" gives no settings."""
    if text.strip().lower() in ("", "none"):
        return []
    settings = []
    for item in text.split(","):
        threads, _, batch = item.strip().partition(":")
        try:
            values = [None if v.strip() == DEFAULT else int(v) for v in (threads, batch or DEFAULT)]
        except ValueError:
            raise ValueError(f"a worker setting is THREADS:BATCH (numbers or '-'), not {item!r}") from None
        if any(v is not None and v < 1 for v in values):
            raise ValueError(f"threads and batch size must be at least 1: {item!r}")
        settings.append(WorkerSetting(values[0], values[1]))
    return settings


@dataclass(frozen=True)
class Work:
    """One job a setting runs: a workflow over a batch already staged."""

    workflow: BenchWorkflow
    batch_id: str
    images: int


@dataclass
class SettingRun:
    setting: WorkerSetting
    up_s: float = 0.0
    runs: dict[str, JobRun] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


async def run_settings(
    stack: LocalStack,
    settings: Sequence[WorkerSetting],
    workers: int,
    work: Sequence[Work],
    timeout_s: float,
) -> list[SettingRun]:
    """Every setting in turn (the stack restarted for each); a failed job is noted, not raised.

    The stack is left running with the last setting.
    """
    done = []
    for index, setting in enumerate(settings):
        result = SettingRun(setting)
        done.append(result)
        await asyncio.to_thread(stack.down)
        options = up_options(workers, setting.ort_threads, setting.batch_size)
        result.up_s = await asyncio.to_thread(stack.up, options)
        for item in work:
            key = item.workflow.key
            job_id = f"bench-setting{index + 1}-{key}"
            try:
                run, _ = await run_job(
                    stack, item.workflow.workflow_id, item.batch_id, job_id, item.images, timeout_s
                )
            except Exception as error:
                result.failures[key] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            else:
                result.runs[key] = run
    return done


def _rate(result: SettingRun | None, item: Work) -> float | None:
    run = None if result is None else result.runs.get(item.workflow.key)
    return item.images / run.processing_s if run is not None and run.processing_s else None


def settings_table(results: Sequence[SettingRun], work: Sequence[Work], workers: int) -> str:
    """Per setting, each workflow's processing-stage images/s and its ratio to the first setting."""
    header = [f"worker setting ({workers} slots)"]
    for item in work:
        header += [f"{item.workflow.key} images/s", "vs first"]
    header.append("note")
    cells: list[Sequence[str]] = [header]
    first = results[0] if results else None
    for result in results:
        line = [result.setting.label]
        for item in work:
            versus = ratio(_rate(result, item), _rate(first, item))
            line += [fmt(_rate(result, item), ".2f"), "-" if versus is None else f"{versus:.2f}x"]
        notes = [f"sluice up {result.up_s:.1f} s"] + [f"{k}: failed: {v}" for k, v in result.failures.items()]
        line.append("; ".join(notes))
        cells.append(line)
    return aligned(cells, set(range(1, 1 + 2 * len(work))))


def winners(results: Sequence[SettingRun], work: Sequence[Work]) -> str:
    """Which setting was fastest for each workflow, and by how much over the slowest."""
    parts = []
    for item in work:
        rates = [(rate, r.setting.label) for r in results if (rate := _rate(r, item)) is not None]
        if len(rates) < 2:
            continue
        best, worst = max(rates), min(rates)
        parts.append(
            f"{item.workflow.key}: {best[1]} (+{(best[0] / worst[0] - 1) * 100:.0f} % over {worst[1]})"
        )
    return "fastest: " + "; ".join(parts) if parts else "fastest: -"
