"""Sluice against a bare loop and Ray Data: the same workflow, model and images, four ways.

    .venv/bin/python -m bench.pipeline [--images N] [--workers-per-machine K] [--skip-ray]

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import onnxruntime as ort

from bench import raydata
from bench.bare import run_bare
from bench.images import write_images
from bench.mesh import MeshRun, run_mesh
from bench.model import WORKFLOW_FILE, workflow_definition
from bench.report import Row, table
from sluice_worker.options import WorkerOptions


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200, help="how many images (default 200)")
    parser.add_argument(
        "--workers-per-machine",
        type=int,
        default=2,
        help="the worker's task slots in the mesh, and Ray's actors (default 2)",
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


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _mesh_rows(run: MeshRun, workers: int) -> list[Row]:
    return [
        Row(
            "sluice job: stage + process + export (CLI)",
            run.images,
            run.total_s,
            f"{workers} slots; stage {run.stage_s:.1f} s, process {run.process_s:.1f} s, "
            f"download {run.export_s:.1f} s",
        ),
        Row(
            "sluice job: processing stage",
            run.images,
            run.processing_s,
            f"submission -> items_done == total; {run.tasks} tasks",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.images < 1 or args.workers_per_machine < 1:
        print("--images and --workers-per-machine must be at least 1", file=sys.stderr)
        return 2
    cpus = os.cpu_count() or 1
    worker = WorkerOptions()
    workers = args.workers_per_machine
    ray_batch = args.ray_batch_size or worker.batch_size
    ray_threads = args.ray_threads or max(1, cpus // workers)
    definition = workflow_definition()
    work_dir = Path(tempfile.mkdtemp(prefix="sluice-bench-", dir="/tmp"))
    work_dir.chmod(0o755)
    rows: list[Row] = []
    notes: list[str] = []
    failed = False
    try:
        paths = write_images(work_dir / "images", args.images, args.seed)
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{len(paths)} JPEGs ({size_mb:.1f} MB, about 640x480) in {work_dir / 'images'}")
        print(f"workflow {WORKFLOW_FILE.name}; {cpus} CPUs; onnxruntime {ort.__version__}")

        print("bare loop ...", flush=True)
        bare = run_bare(paths, definition, worker.ort_threads)
        threads = "ORT default" if bare.intra_op_threads is None else str(bare.intra_op_threads)
        note = f"batch {bare.batch_size}, {threads} threads, warm"
        rows.append(Row("bare loop (1 process)", bare.images, bare.seconds, note))
        bare_rate = rows[0].rate

        if args.skip_mesh:
            notes.append("mesh: skipped")
        else:
            print("sluice job on a fresh local stack ...", flush=True)
            try:
                mesh = run_mesh(work_dir, work_dir / "images", len(paths), workers, args.job_timeout)
                rows.extend(_mesh_rows(mesh, workers))
                notes.append(
                    f"submission -> first result: {_seconds(mesh.first_result_s)} "
                    f"(first TaskResult on NATS; GetJob saw tasks_done >= 1 at "
                    f"{_seconds(mesh.first_task_polled_s)})"
                )
                worker_threads = "ORT default" if worker.ort_threads is None else worker.ort_threads
                notes.append(
                    f"sluice up (not timed above): {mesh.up_s:.1f} s; worker batch {worker.batch_size}, "
                    f"{worker_threads} threads shared by {workers} slots; "
                    f"{mesh.failed} of {mesh.records} records failed"
                )
            except Exception as error:
                failed = True
                traceback.print_exc()
                notes.append(f"mesh: failed: {type(error).__name__}: {str(error).splitlines()[0]}")

        if args.skip_ray:
            notes.append("ray: skipped")
        elif not raydata.available():
            notes.append("ray: not installed (pip install -e '.[bench]')")
        else:
            print("ray data ...", flush=True)
            try:
                ray_run = raydata.run_ray(
                    paths, definition, workers, ray_batch, ray_threads, work_dir / "ray"
                )
                note = (
                    f"batch {ray_run.batch_size}, {ray_threads} threads/actor, "
                    f"first batch {ray_run.first_batch_s:.1f} s"
                )
                rows.append(
                    Row(f"ray data map_batches ({workers} actors)", ray_run.images, ray_run.seconds, note)
                )
                notes.append(f"ray.init (not timed above): {ray_run.init_s:.1f} s")
            except Exception as error:
                failed = True
                traceback.print_exc()
                notes.append(f"ray: failed: {type(error).__name__}: {str(error).splitlines()[0]}")

        print()
        print(table(rows, bare_rate))
        print()
        for note in notes:
            print(note)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 1 if failed else 0


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally` takes the stack down and cleans up


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.perf_counter()
    code = main()
    print(f"bench took {time.perf_counter() - started:.0f} s")
    sys.exit(code)
