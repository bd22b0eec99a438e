"""Sluice against a bare loop and Ray Data, for a text detector, a light detector and a tiny model.

    .venv/bin/python -m bench.pipeline [--images N] [--light-images M] [--tiny-images T]
                                       [--workers-per-machine K] [--worker-settings 1:1,1:8]
                                       [--first-result-tries R] [--skip-ray] [--skip-mesh]

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort

from bench import raydata
from bench.bare import BareRun, run_bare
from bench.ceiling import run_ceiling
from bench.first_result import FirstResult, first_result
from bench.images import write_images, write_small_images
from bench.mesh import JobRun, staged_job
from bench.raydata import RayRun, RaySession
from bench.report import Row, ratio, table
from bench.settings import (
    SettingRun,
    Work,
    WorkerSetting,
    parse_settings,
    run_settings,
    settings_table,
    winners,
)
from bench.stack import LocalStack, up_accepts, up_options
from bench.targets import Target, summary
from bench.workflows import BenchWorkflow, light_workflow, text_workflow, tiny_workflow
from sluice.runtime import usable_cpus
from sluice_worker.options import WorkerOptions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200, help="photos for the text detector (default 200)")
    parser.add_argument(
        "--light-images", type=int, default=600, help="photos for the light detector (default 600)"
    )
    parser.add_argument(
        "--tiny-images", type=int, default=10_000, help="64x64 JPEGs for the tiny model (default 10000)"
    )
    parser.add_argument(
        "--workers-per-machine",
        type=int,
        default=2,
        help="the worker's task slots in the mesh, and Ray's actors (default 2)",
    )
    parser.add_argument(
        "--worker-settings",
        default="1:1,1:8,1:-",
        help="worker settings to compare, THREADS:BATCH for `sluice up --ort-threads --worker-batch-size`, "
        "'-' for the worker's own choice, 'none' for no comparison (default 1:1,1:8,1:-: batch 1, "
        "batch 8, and the worker's default, which picks per workflow)",
    )
    parser.add_argument(
        "--first-result-tries", type=int, default=3, help="warm jobs timed to their first result (default 3)"
    )
    parser.add_argument("--skip-ray", action="store_true", help="do not run the Ray Data way")
    parser.add_argument("--skip-mesh", action="store_true", help="do not start a stack")
    parser.add_argument(
        "--job-timeout",
        type=float,
        default=300.0,
        help="seconds each mesh step (stage, job, export) may take before it counts as failed (default 300)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated images")
    parser.add_argument(
        "--ray-batch-size", type=int, default=None, help="rows per map_batches call (default: the worker's)"
    )
    parser.add_argument(
        "--ray-threads",
        type=int,
        default=None,
        help="ORT intra-op threads per Ray actor (default: CPUs / actors, at least 1)",
    )
    return parser


Inputs = dict[str, list[Path]]
"""The generated images by workflow key, one folder each (the light folder's first files are the text's)."""


@dataclass
class Results:
    bare: dict[str, BareRun] = field(default_factory=dict)
    ray: dict[str, RayRun] = field(default_factory=dict)
    jobs: dict[str, JobRun] = field(default_factory=dict)
    first: FirstResult | None = None
    settings: list[SettingRun] = field(default_factory=list)
    settings_work: list[Work] = field(default_factory=list)
    up_s: float | None = None
    notes: list[str] = field(default_factory=list)
    failed: bool = False

    def fail(self, what: str, error: Exception) -> None:
        """A failed step is a note (and the bench's exit status 1), not the end; its traceback on stderr."""
        self.failed = True
        traceback.print_exception(error)
        self.notes.append(f"{what}: failed: {type(error).__name__}: {str(error).splitlines()[0]}")


@dataclass(frozen=True)
class Plan:
    workers: int
    cpus: int
    worker_batch: str
    """The worker's default batch size, as it says it (WorkerOptions.describe_batch)."""
    ray_batch: int
    ray_threads: int
    settings: list[WorkerSetting]
    tries: int
    timeout_s: float


def _write_inputs(work_dir: Path, args: argparse.Namespace) -> Inputs:
    text = write_images(work_dir / "text", args.images, args.seed)
    light = write_images(work_dir / "light", args.light_images, args.seed)
    tiny = write_small_images(work_dir / "tiny", args.tiny_images, args.seed)
    megabytes = sum(p.stat().st_size for p in [*light, *tiny]) / 1e6
    print(
        f"{len(text)} + {len(light)} JPEGs about 640x480 (text, light; the same seed) and "
        f"{len(tiny)} 64x64 JPEGs ({megabytes:.1f} MB) in {work_dir}"
    )
    return {"text": text, "light": light, "tiny": tiny}


def _in_process(
    inputs: Inputs,
    workflows: dict[str, BenchWorkflow],
    plan: Plan,
    results: Results,
    args: argparse.Namespace,
    work_dir: Path,
) -> None:
    for key in ("text", "light"):
        print(f"bare loop, {key} ...", flush=True)
        try:
            results.bare[key] = run_bare(inputs[key], workflows[key])
        except Exception as error:
            results.fail(f"bare loop ({key})", error)
    if args.skip_ray:
        results.notes.append("ray: skipped")
        return
    if not raydata.available():
        results.notes.append("ray: not installed (pip install -e '.[bench]')")
        return

    def ray_runs() -> None:
        with RaySession(work_dir / "ray") as session:
            results.notes.append(f"ray.init (not timed above): {session.init_s:.1f} s")
            for key in ("text", "light"):
                print(f"ray data, {key} ...", flush=True)
                try:
                    results.ray[key] = session.run(
                        inputs[key], workflows[key], plan.workers, plan.ray_batch, plan.ray_threads
                    )
                except Exception as error:
                    results.fail(f"ray ({key})", error)

    try:
        ray_runs()
    except Exception as error:
        results.fail("ray", error)


async def _mesh(
    stack: LocalStack,
    inputs: Inputs,
    workflows: dict[str, BenchWorkflow],
    plan: Plan,
    results: Results,
    work_dir: Path,
) -> None:
    def failed(what: str, error: Exception) -> None:
        results.fail(what, error)
        print(stack.log_tails(), file=sys.stderr)

    results.up_s = await asyncio.to_thread(stack.up, up_options(plan.workers))
    for workflow in workflows.values():
        if workflow.model is not None:
            await stack.cli(*workflow.model.register_args(work_dir / f"{workflow.key}-spec.json"))
        await stack.cli(
            "workflows",
            "create",
            "--workflow-id",
            workflow.workflow_id,
            "--file",
            str(workflow.write(work_dir)),
        )

    async def job(key: str) -> None:
        print(f"sluice job, {key} ...", flush=True)
        try:
            results.jobs[key] = await staged_job(
                stack,
                workflows[key].workflow_id,
                inputs[key][0].parent,
                f"bench-{key}",
                f"bench-{key}",
                len(inputs[key]),
                work_dir / f"export-{key}",
                plan.timeout_s,
            )
        except Exception as error:
            failed(f"sluice job ({key})", error)

    await job("text")
    if "text" in results.jobs and plan.tries:
        print("first result, warm ...", flush=True)
        try:
            results.first = await first_result(
                stack, workflows["text"].workflow_id, "bench-text", "bench-first", plan.tries, plan.timeout_s
            )
        except Exception as error:
            failed("first result", error)
    await job("light")
    print("tiny model, the orchestration ceiling ...", flush=True)
    try:
        results.jobs["tiny"] = await run_ceiling(
            stack,
            workflows["tiny"],
            inputs["tiny"][0].parent,
            len(inputs["tiny"]),
            work_dir / "export-tiny",
            plan.timeout_s,
        )
    except Exception as error:
        failed("sluice job (tiny)", error)
    if not plan.settings:
        results.notes.append("worker settings: none asked for")
        return
    if not up_accepts("--ort-threads"):
        results.notes.append("worker settings: skipped (this `sluice up` has no --ort-threads)")
        return
    results.settings_work = [
        Work(workflows[key], f"bench-{key}", len(inputs[key]))
        for key in ("text", "light", "tiny")
        if key in results.jobs
    ]
    print("worker settings ...", flush=True)
    results.settings = await run_settings(
        stack, plan.settings, plan.workers, results.settings_work, plan.timeout_s
    )
    if any(r.failures for r in results.settings):
        results.failed = True
        print(stack.log_tails(), file=sys.stderr)


def _detector_rows(key: str, results: Results, plan: Plan) -> tuple[list[Row], float | None]:
    rows: list[Row] = []
    bare = results.bare.get(key)
    bare_rate = bare.images / bare.seconds if bare else None
    if bare:
        rows.append(
            Row("bare loop (1 process)", bare.images, bare.seconds, "batch 1, ORT default threads, warm")
        )
    job = results.jobs.get(key)
    ray = results.ray.get(key)
    ray_rate = ray.images / ray.seconds if ray else None
    if job:
        full_target = ""
        if key == "text":
            full_target = Target("", ratio(job.images / job.total_s, bare_rate), 0.9, True).cell()
        rows.append(
            Row(
                "sluice job: stage + process + export (CLI)",
                job.images,
                job.total_s,
                f"{plan.workers} slots; stage {job.stage_s:.1f} s, process {job.process_s:.1f} s, "
                f"download {job.export_s:.1f} s",
                full_target,
            )
        )
        stage_rate = job.images / job.processing_s if job.processing_s else None
        stage_target = ""
        if key == "light":
            stage_target = (
                f"{Target('', ratio(stage_rate, bare_rate), 1.2, True).cell()}; "
                f"{Target('', ratio(stage_rate, ray_rate), 1.3, True).cell('Ray')}"
            )
        rows.append(
            Row(
                "sluice job: processing stage",
                job.images,
                job.processing_s,
                f"submission -> items_done == total; {job.tasks} tasks",
                stage_target,
            )
        )
    if ray:
        note = (
            f"batch {ray.batch_size}, {ray.threads_per_actor} threads/actor, "
            f"first batch {ray.first_batch_s:.1f} s"
        )
        rows.append(Row(f"ray data map_batches ({ray.actors} actors)", ray.images, ray.seconds, note))
    return rows, bare_rate


def _targets(results: Results) -> list[Target]:
    def rate(run: BareRun | RayRun | None) -> float | None:
        return run.images / run.seconds if run else None

    text, light, tiny = (results.jobs.get(k) for k in ("text", "light", "tiny"))
    light_stage = light.images / light.processing_s if light and light.processing_s else None
    return [
        Target(
            "text detector, full job vs bare loop",
            ratio(text.images / text.total_s, rate(results.bare.get("text"))) if text else None,
            0.9,
            True,
        ),
        Target(
            "light detector, processing stage vs bare loop",
            ratio(light_stage, rate(results.bare.get("light"))),
            1.2,
            True,
        ),
        Target(
            "light detector, processing stage vs Ray Data",
            ratio(light_stage, rate(results.ray.get("light"))),
            1.3,
            True,
        ),
        Target(
            "tiny model, whole job",
            tiny.images / tiny.job_s if tiny and tiny.job_s else None,
            2000,
            True,
            " images/s",
        ),
        Target(
            "submission -> first visible result (warm, text detector)",
            results.first.median("visible_s") if results.first else None,
            1.5,
            False,
            " s",
        ),
    ]


def _print(results: Results, workflows: dict[str, BenchWorkflow], plan: Plan) -> None:
    targets = _targets(results)
    for key in ("text", "light"):
        rows, bare_rate = _detector_rows(key, results, plan)
        print(f"\n{workflows[key].title}")
        if rows:
            print(table(rows, bare_rate))
        if key == "light":
            print(targets[2].line())
    tiny = results.jobs.get("tiny")
    print(f"\norchestration ceiling: {workflows['tiny'].title}, the scheduler's default task size")
    if tiny:
        rows = [
            Row(
                "sluice job: processing stage",
                tiny.images,
                tiny.processing_s,
                f"submission -> items_done == total; {tiny.tasks} tasks",
            ),
            Row(
                "sluice job: submission -> completed",
                tiny.images,
                tiny.job_s,
                "created_at -> ended_at, the export stage included",
                targets[3].cell(),
            ),
        ]
        print(table(rows, None))
        print(
            f"(staged before the job with create-batch-of-images: {tiny.stage_s:.1f} s, "
            f"{tiny.images / tiny.stage_s:,.0f} files/s; `python -m bench.staging` measures staging alone)"
        )
    first = results.first
    if first:
        print(
            f"\nsubmission -> first visible result (warm, text detector, median of {len(first.tries)}): "
            f"{_s(first.median('visible_s'))} ({first.spread()}); GetJob items_done >= 1 at "
            f"{_s(first.median('item_s'))}, a results/ object in <job>-processing at "
            f"{_s(first.median('object_s'))}; "
            f"target {targets[4].cell()}"
        )
    if results.settings:
        print()
        print(settings_table(results.settings, results.settings_work, plan.workers))
        print(winners(results.settings, results.settings_work))
    print()
    threads = max(1, plan.cpus // plan.workers)
    if results.up_s is not None:
        print(
            f"sluice up (not timed above): {results.up_s:.1f} s; worker: {plan.workers} slots, "
            f"ORT threads its own choice ({plan.cpus} usable CPUs // {plan.workers} slots = {threads}), "
            f"{plan.worker_batch}"
        )
    for note in results.notes:
        print(note)
    print(summary(targets))


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    counts = (args.images, args.light_images, args.tiny_images, args.workers_per_machine)
    if min(counts) < 1 or args.first_result_tries < 0:
        print(
            "--images, --light-images, --tiny-images and --workers-per-machine must be at least 1",
            file=sys.stderr,
        )
        return 2
    try:
        settings = parse_settings(args.worker_settings)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    cpus = usable_cpus()
    worker = WorkerOptions()
    plan = Plan(
        workers=args.workers_per_machine,
        cpus=cpus,
        worker_batch=worker.describe_batch(),
        ray_batch=args.ray_batch_size or worker.batch_size,
        ray_threads=args.ray_threads or max(1, cpus // args.workers_per_machine),
        settings=settings,
        tries=args.first_result_tries,
        timeout_s=args.job_timeout,
    )
    work_dir = Path(tempfile.mkdtemp(prefix="sluice-bench-", dir="/tmp"))
    work_dir.chmod(0o755)
    results = Results()
    stack = LocalStack(work_dir / "state")
    try:
        inputs = _write_inputs(work_dir, args)
        workflows = {"text": text_workflow(), "light": light_workflow(), "tiny": tiny_workflow(work_dir)}
        print(f"{cpus} usable CPUs ({os.cpu_count()} on the machine); onnxruntime {ort.__version__}")
        _in_process(inputs, workflows, plan, results, args, work_dir)
        if args.skip_mesh:
            results.notes.append("mesh: skipped")
        else:
            print("local stack ...", flush=True)
            try:
                asyncio.run(_mesh(stack, inputs, workflows, plan, results, work_dir))
            except Exception as error:
                if stack.state.exists():
                    print(stack.log_tails(), file=sys.stderr)
                results.fail("mesh", error)
        _print(results, workflows, plan)
    finally:
        stack.down()
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if results.failed else 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally` takes the stack down and cleans up


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.perf_counter()
    code = main()
    print(f"bench took {time.perf_counter() - started:.0f} s")
    sys.exit(code)
