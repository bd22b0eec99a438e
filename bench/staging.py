"""Staging alone: how many small files a second it registers.

    .venv/bin/python -m bench.staging [--files N] [--streams S]

A fresh local stack (`sluice up --no-dashboard` in a new state folder; its start-up is printed,
not counted) and N 64x64 JPEGs (about 1-2 kB each, bench/images.py). Three figures:

- `sluice data-staging create-batch-of-images (CLI)`: the CLI subprocess as a user types it, from
  its start to its exit (Python start-up, listing the batch, the upload over the CLI's parallel
  streams, the closing GetBatch).
- `registered during that upload`: GetBatch polled every POLL_S while the CLI runs; from the
  first poll that shows an object to the first that shows all N (the files recorded per second
  as staging sees them, without the CLI's start-up).
- `the CLI's upload() in the bench process (S streams)`: the same files into a second batch
  through `sluice.cli.upload.upload` (S streams at once), called in this process: the upload
  alone, without the CLI's start-up, listing and closing GetBatch.

Target: 2,000 files/s for the registered figure (the exit status is 1 below it).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.images import write_small_images
from bench.report import aligned, fmt
from bench.stack import CliError, LocalStack
from bench.targets import Target
from sluice.cli.upload import local_files, upload
from sluice.clients import aio_channel, channel, staging_stub, user_metadata
from sluice.upload_streams import UPLOAD_STREAMS
from sluice.v1 import common_pb2, staging_pb2

CLI_BATCH = "bench-staging-cli"
IN_PROCESS_BATCH = "bench-staging-in-process"
POLL_S = 0.02
TARGET_PER_S = 2000.0


@dataclass(frozen=True)
class Figures:
    files: int
    up_s: float
    cli_s: float
    registered_s: float | None
    """First poll showing an object to the first showing all of them; None if never seen."""
    registered_files: int
    """The files recorded in that window (those after the first poll that saw any)."""
    in_process_s: float
    streams: int


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.staging", description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000, help="small JPEGs to stage (default 5000)")
    parser.add_argument(
        "--streams",
        type=int,
        default=UPLOAD_STREAMS,
        help=f"streams at once for the in-process figure (default {UPLOAD_STREAMS})",
    )
    return parser


class CountWatcher:
    """Polls GetBatch until the batch holds `files` objects, noting when it first held one and
    when it held all (time.perf_counter())."""

    def __init__(self, address: str, api_key: str, batch_id: str, files: int) -> None:
        self._address = address
        self._metadata = user_metadata(api_key)
        self._batch_id = batch_id
        self._files = files
        self.first_at: float | None = None
        self.first_count = 0
        self.all_at: float | None = None

    async def run(self) -> None:
        request = staging_pb2.GetBatchRequest(batch_id=self._batch_id)
        async with aio_channel(self._address) as channel:
            stub = staging_stub(channel)
            while self.all_at is None:
                try:
                    batch = await stub.GetBatch(request, metadata=self._metadata)
                except Exception:  # not created yet
                    batch = staging_pb2.Batch()
                now = time.perf_counter()
                if batch.object_count and self.first_at is None:
                    self.first_at, self.first_count = now, int(batch.object_count)
                if batch.object_count >= self._files:
                    self.all_at = now
                await asyncio.sleep(POLL_S)


async def _cli_upload(stack: LocalStack, images: Path, files: int) -> tuple[float, CountWatcher]:
    watcher = CountWatcher(stack.staging_address, stack.api_key, CLI_BATCH, files)
    watching = asyncio.create_task(watcher.run())
    try:
        started = time.perf_counter()
        out = await stack.cli(
            "data-staging", "create-batch-of-images", "--images-dir", str(images), "--batch-id", CLI_BATCH
        )
        cli_s = time.perf_counter() - started
        if f"batch {CLI_BATCH}: {files} uploaded" not in out:
            raise RuntimeError(f"the CLI did not upload every file:\n{out}")
        await asyncio.wait_for(watching, timeout=10)
    finally:
        if not watching.done():
            watching.cancel()
    return cli_s, watcher


def _in_process_upload(stack: LocalStack, images: Path, streams: int) -> float:
    """Seconds `upload()` takes to send every file of `images` over `streams` streams at once."""
    files = [(name, path, path.stat().st_size) for name, path in local_files(images)]
    metadata = user_metadata(stack.api_key)
    with channel(stack.staging_address) as opened:
        stub = staging_stub(opened)
        request = staging_pb2.CreateBatchRequest(batch_id=IN_PROCESS_BATCH, type=common_pb2.BATCH_TYPE_IMAGES)
        stub.CreateBatch(request, metadata=metadata)
        started = time.perf_counter()
        stored, rejected = upload(stub, metadata, IN_PROCESS_BATCH, files, streams)
        seconds = time.perf_counter() - started
    if stored != len(files) or rejected:
        raise RuntimeError(f"upload() stored {stored} of {len(files)} files ({len(rejected)} refused)")
    return seconds


async def _measure(stack: LocalStack, images: Path, files: int, streams: int, up_s: float) -> Figures:
    cli_s, watcher = await _cli_upload(stack, images, files)
    in_process_s = await asyncio.to_thread(_in_process_upload, stack, images, streams)
    window = None
    if watcher.first_at is not None and watcher.all_at is not None and watcher.all_at > watcher.first_at:
        window = watcher.all_at - watcher.first_at
    return Figures(files, up_s, cli_s, window, files - watcher.first_count, in_process_s, streams)


def run(work: Path, files: int, streams: int) -> Figures:
    """Write the images, up a fresh stack under `work`, measure, and always take it down."""
    images = work / "images"
    write_small_images(images, files)
    stack = LocalStack(work / "state")
    try:
        up_s = stack.up(["--no-dashboard"])
        return asyncio.run(_measure(stack, images, files, streams, up_s))
    except (CliError, RuntimeError):
        print(stack.log_tails(), file=sys.stderr)
        raise
    finally:
        stack.down()


def report(figures: Figures) -> str:
    rate = _rate(figures.registered_files, figures.registered_s)
    registered = Target("files registered per second", rate, TARGET_PER_S, True, " files/s")
    rows: list[Sequence[str] | None] = [("way", "files", "seconds", "files/s", "target", "note")]
    for way, count, seconds, target, note in (
        (
            "sluice data-staging create-batch-of-images (CLI)",
            figures.files,
            figures.cli_s,
            "",
            "CLI start to exit, as a user types it",
        ),
        (
            "registered during that upload",
            figures.registered_files,
            figures.registered_s,
            registered.cell(),
            f"GetBatch every {POLL_S * 1000:.0f} ms: first object seen to all seen",
        ),
        (
            f"the CLI's upload() in the bench process ({figures.streams} streams)",
            figures.files,
            figures.in_process_s,
            "",
            "no CLI start-up; a second batch",
        ),
    ):
        rows.append((way, str(count), fmt(seconds, ".2f"), fmt(_rate(count, seconds), ",.0f"), target, note))
    return "\n".join(
        [
            f"staging: {figures.files} small JPEGs (64x64), one fresh local stack",
            "",
            aligned(rows, right={1, 2, 3}),
            "",
            f"sluice up: {figures.up_s:.1f} s (not counted)",
            registered.line(),
        ]
    )


def _rate(count: int, seconds: float | None) -> float | None:
    return count / seconds if seconds else None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-staging-", dir="/tmp"))
    work.chmod(0o755)  # Postgres runs unprivileged
    try:
        figures = run(work, args.files, args.streams)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(figures))
    rate = _rate(figures.registered_files, figures.registered_s)
    return 0 if rate is not None and rate >= TARGET_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
