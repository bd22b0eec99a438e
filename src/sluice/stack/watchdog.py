"""The local stack's watchdog: it restarts a part whose process is gone, with backoff.

`sluice up` starts it detached (`python -m sluice.stack.watchdog --state-dir D`) once every part
serves; `sluice down` stops it before the parts. Every POLL_S it takes the state folder's lock for
a moment (skipping the look while `up` or `down` holds it) and restarts each part whose recorded
process is gone through `start_part`, as `up` started it: same command, environment, port and
log. The wait before a restart doubles from FIRST_DELAY_S to MAX_DELAY_S for a part that keeps
dying, and starts again from FIRST_DELAY_S once the part has stayed up STABLE_S. Each restart is
one line in logs/watchdog.log and counted in stack.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sluice.errors import FailedPrecondition, SluiceError
from sluice.stack.services import PARTS, WATCHDOG
from sluice.stack.stack_status import is_running
from sluice.stack.state import Layout, StackFile
from sluice.stack.supervisor import locked, start_part

POLL_S = 0.5
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0
STABLE_S = 30.0

log = logging.getLogger("sluice.watchdog")


def backoff_s(streak: int) -> float:
    """The wait before restarting a part that died `streak` times without staying up STABLE_S."""
    return min(FIRST_DELAY_S * 2 ** min(streak, 16), MAX_DELAY_S)


@dataclass
class Watch:
    """What the watchdog remembers of one part between looks."""

    pid: int | None = None  # the process last seen running
    since: float = 0.0  # when it was first seen running
    streak: int = 0  # restarts with less than STABLE_S up between them
    due: float | None = None  # when the part, found gone, is restarted


def check(layout: Layout, watches: dict[str, Watch], now: float) -> bool:
    """Look at every part once and restart those due; False when this is not the stack's watchdog.

    Call it holding the lock. A part without a pid was never started or was stopped by `down`.
    """
    stack = StackFile.load(layout)
    if stack.record(WATCHDOG).pid != os.getpid():
        return False
    for name in PARTS:
        record = stack.parts.get(name)
        watch = watches.setdefault(name, Watch())
        if record is None or record.pid is None:
            continue
        if is_running(record):
            if watch.pid != record.pid:
                watch.pid, watch.since = record.pid, now
            elif now - watch.since >= STABLE_S:
                watch.streak = 0
            watch.due = None
            continue
        delay = backoff_s(watch.streak)
        if watch.due is None:
            watch.due = now + delay
        if now < watch.due:
            continue
        watch.streak, watch.due = watch.streak + 1, None
        record.restarts += 1
        log.info("%s exited; restarting it (restart %d, after %.1f s)", name, record.restarts, delay)
        try:
            start_part(layout, stack, name, by_watchdog=True)
        except SluiceError as error:
            log.warning("could not restart %s: %s", name, error)
        stack.save(layout)
    return True


def watch_stack(state_dir: Path) -> None:
    """Watch the stack in `state_dir` until it no longer names this process as its watchdog."""
    layout = Layout(state_dir.absolute())
    watches: dict[str, Watch] = {}
    log.info("watching the stack in %s (pid %d)", layout.root, os.getpid())
    while layout.stack_file.exists():
        try:
            with locked(layout, timeout_s=0):
                if not check(layout, watches, time.monotonic()):
                    break
        except FailedPrecondition:
            pass  # `up` or `down` holds the lock, or stack.json is damaged: look again soon
        except Exception:
            log.exception("looking at the stack failed; trying again")
        dues = [w.due - time.monotonic() for w in watches.values() if w.due is not None]
        time.sleep(max(min([POLL_S, *dues]), 0.01))
    log.info("the stack in %s no longer has this watchdog; exiting", layout.root)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sluice.stack.watchdog", description="restart the parts of a local stack"
    )
    parser.add_argument("--state-dir", type=Path, required=True, help="the stack's state folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(message)s")
    watch_stack(args.state_dir)


if __name__ == "__main__":
    main()
