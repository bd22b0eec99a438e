"""The dashboard at scale: the Jobs page with many jobs and the Batch page of a huge batch.

    .venv/bin/python -m bench.dashboard [--jobs N] [--images N] [--repeats R]

Seeds a fresh local stack (`sluice up --no-dashboard`) with N jobs and an N-image batch, then
renders each page R times with Streamlit's AppTest (the page script run in this process, as the
dashboard server runs it for a browser) beside the bare gRPC calls the page makes. The issue's
target is a render under 2 s. See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.mesh import CliError, cli_command, log_tails, sluice_down
from bench.model import WORKFLOW_FILE
from bench.report import aligned, fmt
from sluice.job_states import ENDED, JOB_STATES
from sluice.stack.state import load_credentials
from sluice.v1 import common_pb2, scheduler_pb2, staging_pb2
from sluice_dashboard import session
from sluice_dashboard.client import SCHEDULER, STAGING, Addresses, ServiceError, Services
from sluice_dashboard.views import batch as batch_view
from sluice_dashboard.views import jobs as jobs_view

PAGES = Path(__file__).resolve().parents[1] / "dashboard" / "sluice_dashboard" / "page_scripts"
WORKFLOW_ID = "bench-dashboard"
ONE_PHOTO_BATCH = "bench-dash-one"
BIG_BATCH = "bench-dash-big"
TARGET_S = 2.0
JOBS_PAGE_SIZE = jobs_view.PAGE_SIZE
"""Rows the Jobs page asks ListJobs for: the bare call asks the same."""
CONTENT_PAGE_SIZE = batch_view.PAGE_SIZE
"""Objects the Batch page lists per page and previews."""
THUMBNAIL_SIDE = batch_view.THUMB_SIDE
KEEP_EVERY = 50
"""One seeded job in KEEP_EVERY is left to run (and complete); the rest are aborted at once."""
APP_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 60.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs to seed (default 1000)")
    parser.add_argument(
        "--images", type=int, default=100_000, help="images in the big batch (default 100000)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed renders of each page (default 5)")
    parser.add_argument(
        "--files-per-stream", type=int, default=2000, help="files per UploadFiles stream (default 2000)"
    )
    parser.add_argument(
        "--upload-streams", type=int, default=4, help="UploadFiles streams at once (default 4)"
    )
    return parser


# --- seeding ------------------------------------------------------------------------------


def tiny_jpegs(kinds: int = 64, side: int = 32) -> list[bytes]:
    """`kinds` distinct side x side JPEGs (seeded noise over a colour), about 1 kB each."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(kinds):
        colour = rng.integers(0, 256, size=3)
        image = np.clip(colour + rng.normal(0, 30, size=(side, side, 3)), 0, 255).astype(np.uint8)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            raise RuntimeError("could not encode a JPEG")
        out.append(encoded.tobytes())
    return out


def _chunks(batch_id: str, first: int, count: int, jpegs: list[bytes]) -> Iterator[staging_pb2.UploadChunk]:
    for i in range(first, first + count):
        yield staging_pb2.UploadChunk(
            batch_id=batch_id, file_name=f"img-{i:06d}.jpg", data=jpegs[i % len(jpegs)], last=True
        )


def seed_batch(svc: Services, batch_id: str, images: int, per_stream: int, streams: int) -> float:
    """An images batch of `images` tiny JPEGs, `per_stream` files per UploadFiles stream and
    `streams` streams at once; prints progress; returns the seconds it took."""
    svc.call(
        STAGING,
        "CreateBatch",
        staging_pb2.CreateBatchRequest(batch_id=batch_id, type=common_pb2.BATCH_TYPE_IMAGES),
    )
    jpegs = tiny_jpegs()
    started = time.perf_counter()
    done = 0

    def one(first: int) -> int:
        count = min(per_stream, images - first)
        summary = svc.upload(STAGING, "UploadFiles", _chunks(batch_id, first, count, jpegs), timeout_s=600)
        if summary.rejected:
            raise RuntimeError(f"staging refused {len(summary.rejected)} files: {summary.rejected[0]}")
        return int(summary.files_stored)

    with ThreadPoolExecutor(max_workers=max(1, streams)) as pool:
        for stored in pool.map(one, range(0, images, per_stream)):
            done += stored
            seconds = time.perf_counter() - started
            print(f"  batch {batch_id}: {done}/{images} images stored ({done / seconds:.0f}/s)", flush=True)
    return time.perf_counter() - started


def seed_jobs(svc: Services, jobs: int) -> tuple[float, int]:
    """`jobs` jobs on the one-photo batch, all but one in KEEP_EVERY aborted right away; waits
    for the kept ones to end (so the worker idles while pages are timed). Returns the seconds
    and how many were kept."""
    started = time.perf_counter()
    kept = [f"bench-job-{i:04d}" for i in range(jobs) if i % KEEP_EVERY == 0]

    def one(i: int) -> None:
        job_id = f"bench-job-{i:04d}"
        request = scheduler_pb2.CreateJobRequest(
            job_id=job_id, workflow_id=WORKFLOW_ID, batch_id=ONE_PHOTO_BATCH
        )
        svc.call(SCHEDULER, "CreateJob", request, timeout_s=CALL_TIMEOUT_S)
        if i % KEEP_EVERY:
            svc.call(
                SCHEDULER, "AbortJob", scheduler_pb2.AbortJobRequest(job_id=job_id), timeout_s=CALL_TIMEOUT_S
            )

    with ThreadPoolExecutor(max_workers=4) as pool:
        for n, _ in enumerate(pool.map(one, range(jobs)), start=1):
            if n % 100 == 0 or n == jobs:
                print(f"  jobs: {n}/{jobs} created ({n / (time.perf_counter() - started):.0f}/s)", flush=True)
    deadline = time.monotonic() + 300
    for job_id in kept:
        while time.monotonic() < deadline:
            job = svc.call(SCHEDULER, "GetJob", scheduler_pb2.GetJobRequest(job_id=job_id))
            if job.state in ENDED:
                break
            time.sleep(0.2)
    return time.perf_counter() - started, len(kept)


def job_state_mix(svc: Services) -> str:
    """'980 aborted, 20 completed', counted over ListJobs pages of 1000."""
    counts: dict[str, int] = {}
    token = ""
    while True:
        page = svc.call(
            SCHEDULER,
            "ListJobs",
            scheduler_pb2.ListJobsRequest(page_size=1000, page_token=token),
            timeout_s=30,
        )
        for job in page.jobs:
            name = JOB_STATES.get(job.state, "?")
            counts[name] = counts.get(name, 0) + 1
        token = page.next_page_token
        if not token:
            break
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


# --- timing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def max(self) -> float:
        return max(self.seconds)


def app_test(page: str, addresses: Addresses, api_key: str, **query: str) -> AppTest:
    """The page's AppTest, signed in as `api_key` (what tests/dashboard_stack.py builds)."""
    at = AppTest.from_file(str(PAGES / f"{page}.py"), default_timeout=APP_TIMEOUT_S)
    at.session_state[session.ADDRESSES] = addresses
    at.session_state[session.API_KEY] = api_key
    at.session_state[session.WORKSPACE] = "default"
    for name, value in query.items():
        at.query_params[name] = value
    return at


def render_once(page: str, addresses: Addresses, api_key: str, cold: bool, **query: str) -> AppTest:
    """One render of `page` in a fresh session (a user opening it), after emptying Streamlit's
    data cache when `cold` (the Batch page caches previews); raises when the page showed an
    exception, an error or a warning (a service that failed) instead of its content."""
    at = app_test(page, addresses, api_key, **query)
    if cold:
        st.cache_data.clear()
    at.run()
    if at.exception:
        raise RuntimeError(f"page {page} raised: {at.exception[0].value}")
    for shown in (*at.error, *at.warning):
        raise RuntimeError(f"page {page} showed {shown.value!r} instead of its content")
    return at


def shown_jobs(at: AppTest) -> int:
    return len(at.dataframe[0].value) if at.dataframe else 0


def shown_images(at: AppTest) -> int:
    return len(at.get("image"))


def timed(repeats: int, action: Callable[[], object]) -> Timing:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return Timing(seconds)


HEADER = (
    "page", "renders", "median s", "max s", "bare calls s", "render/bare", f"target < {TARGET_S:g} s",
    "bare calls",
)  # fmt: skip


def _expect(shown: int, wanted: int, what: str) -> None:
    if shown != wanted:
        raise RuntimeError(f"the page showed {shown} {what}, not {wanted}")


class PageTimer:
    """Renders pages `repeats` times each after one untimed first render per page (imports,
    Streamlit's start-up), checking each render's content with `check`."""

    def __init__(self, addresses: Addresses, api_key: str, repeats: int) -> None:
        self.addresses, self.api_key, self.repeats = addresses, api_key, repeats
        self.first: dict[str, float] = {}

    def time(self, page: str, cold: bool, check: Callable[[AppTest], None], **query: str) -> Timing:
        if page not in self.first:
            started = time.perf_counter()
            check(render_once(page, self.addresses, self.api_key, True, **query))
            self.first[page] = time.perf_counter() - started
        seconds = []
        for _ in range(self.repeats):
            started = time.perf_counter()
            at = render_once(page, self.addresses, self.api_key, cold, **query)
            seconds.append(time.perf_counter() - started)
            check(at)
        return Timing(seconds)

    def first_renders(self) -> str:
        return ", ".join(f"{page} {seconds:.2f} s" for page, seconds in self.first.items())


def jobs_calls(svc: Services) -> None:
    svc.call(SCHEDULER, "ListJobs", scheduler_pb2.ListJobsRequest(page_size=JOBS_PAGE_SIZE))


def batch_calls(svc: Services, batch_id: str, thumbnails: bool) -> None:
    svc.call(STAGING, "GetBatch", staging_pb2.GetBatchRequest(batch_id=batch_id))
    content = svc.call(
        STAGING,
        "ListBatchContent",
        staging_pb2.ListBatchContentRequest(batch_id=batch_id, page_size=CONTENT_PAGE_SIZE, all_parts=True),
    )
    if thumbnails:
        names = [o.name for o in content.objects]
        request = staging_pb2.GetThumbnailsRequest(batch_id=batch_id, names=names, max_side=THUMBNAIL_SIDE)
        svc.call(STAGING, "GetThumbnails", request, timeout_s=CALL_TIMEOUT_S)


def thumbnails_available(svc: Services, batch_id: str) -> str | None:
    """None when staging serves GetThumbnails, else why not (the bare row then leaves it out)."""
    try:
        batch_calls(svc, batch_id, thumbnails=True)
    except ServiceError as error:
        return f"GetThumbnails: {error.code.name} {error.details}"
    return None


# --- the run ------------------------------------------------------------------------------


def _row(name: str, render: Timing, bare: Timing, what: str) -> tuple[str, ...]:
    ratio = render.median / bare.median if bare.median else None
    verdict = "met" if render.max < TARGET_S else ("missed (max)" if render.median < TARGET_S else "missed")
    return (
        name,
        str(len(render.seconds)),
        fmt(render.median, ".3f"),
        fmt(render.max, ".3f"),
        fmt(bare.median, ".3f"),
        "-" if ratio is None else f"{ratio:.1f}x",
        verdict,
        what,
    )


def run(args: argparse.Namespace, work_dir: Path) -> int:
    state = work_dir / "state"
    started = time.perf_counter()
    up = subprocess.run(
        cli_command(state, "up", "--no-dashboard"), capture_output=True, text=True, timeout=300, check=False
    )
    if up.returncode != 0:
        raise CliError(f"sluice up failed ({up.returncode}):\n{up.stdout}\n{up.stderr}")
    up_s = time.perf_counter() - started
    credentials = load_credentials(state)
    addresses = Addresses(credentials["staging_address"], credentials["scheduler_address"])
    api_key = credentials["api_key"]
    svc = Services(addresses, api_key, timeout_s=10.0)

    create = cli_command(
        state, "workflows", "create", "--workflow-id", WORKFLOW_ID, "--file", str(WORKFLOW_FILE)
    )
    subprocess.run(create, capture_output=True, text=True, timeout=120, check=True)
    seed_batch(svc, ONE_PHOTO_BATCH, 1, 1, 1)
    print(f"seeding {args.jobs} jobs ...", flush=True)
    jobs_s, kept = seed_jobs(svc, args.jobs)
    print(f"seeding a {args.images}-image batch ...", flush=True)
    batch_s = seed_batch(svc, BIG_BATCH, args.images, args.files_per_stream, args.upload_streams)
    mix = job_state_mix(svc)
    no_thumbnails = thumbnails_available(svc, BIG_BATCH)

    print("timing ...", flush=True)
    pages = PageTimer(addresses, api_key, args.repeats)
    want_jobs = min(args.jobs, JOBS_PAGE_SIZE)
    want_images = min(args.images, CONTENT_PAGE_SIZE) if no_thumbnails is None else 0
    thumbs = " + GetThumbnails of it" if no_thumbnails is None else " (no GetThumbnails served)"
    cells: list[tuple[str, ...] | None] = [HEADER]
    jobs_render = pages.time(
        "jobs", cold=False, check=lambda at: _expect(shown_jobs(at), want_jobs, "jobs rows")
    )
    cells.append(
        _row(f"jobs ({args.jobs} jobs)", jobs_render, timed(args.repeats, lambda: jobs_calls(svc)),
             f"ListJobs page of {JOBS_PAGE_SIZE}")
    )  # fmt: skip
    renders = [jobs_render]
    for cold in (True, False):
        render = pages.time(
            "batch", cold=cold, check=lambda at: _expect(shown_images(at), want_images, "thumbnails"),
            batch_id=BIG_BATCH,
        )  # fmt: skip
        renders.append(render)
        with_thumbs = cold and no_thumbnails is None
        bare = timed(args.repeats, lambda: batch_calls(svc, BIG_BATCH, thumbnails=with_thumbs))  # noqa: B023
        cells.append(
            _row(f"batch ({args.images} images), previews {'not ' if cold else ''}cached", render, bare,
                 f"GetBatch + ListBatchContent page of {CONTENT_PAGE_SIZE}{thumbs if cold else ''}")
        )  # fmt: skip
    print()
    print(aligned(cells, {1, 2, 3, 4, 5}))
    print()
    print(
        "renders: a fresh AppTest session each, the page script run in this process; first renders "
        f"(imports, not counted): {pages.first_renders()}"
    )
    print(f"jobs: {mix} ({kept} left to run, all ended before timing)")
    if no_thumbnails:
        print(f"thumbnails: not served, so the batch rows' bare calls leave them out ({no_thumbnails})")
    print(
        f"seeding (not timed above): sluice up {up_s:.1f} s; {args.jobs} jobs {jobs_s:.1f} s; "
        f"{args.images} images {batch_s:.1f} s ({args.images / batch_s:.0f}/s)"
    )
    return 0 if all(r.max < TARGET_S for r in renders) else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # AppTest outside `streamlit run` warns on every widget that no script context exists, and
    # on every cached call that no runtime does.
    # (A filter, not a level: Streamlit sets its loggers' levels again when it reads its config.)
    for noisy in ("scriptrunner_utils.script_run_context", "caching.cache_data_api"):
        logging.getLogger(f"streamlit.runtime.{noisy}").addFilter(lambda r: r.levelno >= logging.ERROR)
    if args.jobs < 1 or args.images < 1 or args.repeats < 1 or args.files_per_stream < 1:
        print("--jobs, --images, --repeats and --files-per-stream must be at least 1", file=sys.stderr)
        return 2
    work_dir = Path(tempfile.mkdtemp(prefix="sluice-bench-dash-", dir="/tmp"))
    work_dir.chmod(0o755)  # Postgres runs unprivileged
    state = work_dir / "state"
    try:
        return run(args, work_dir)
    except Exception:
        if state.exists():
            print(log_tails(state), file=sys.stderr)
        raise
    finally:
        if state.exists():
            sluice_down(state)
        shutil.rmtree(work_dir, ignore_errors=True)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally` takes the stack down and cleans up


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    began = time.perf_counter()
    code = main()
    print(f"bench took {time.perf_counter() - began:.0f} s")
    sys.exit(code)
