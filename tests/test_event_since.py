"""`sluice events --since`: the times and durations it takes, and a clear refusal of others."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sluice.cli.main import main
from sluice.errors import InvalidArgument
from sluice.v1 import scheduler_pb2
from sluice_scheduler.servicer import _since

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", datetime(2026, 12, 2, 2, 58, 30, tzinfo=UTC)),
        ("10m", datetime(2026, 12, 2, 2, 50, tzinfo=UTC)),
        ("2h", datetime(2026, 12, 2, 1, 0, tzinfo=UTC)),
        ("1.5d", datetime(2026, 11, 30, 15, 0, tzinfo=UTC)),
        ("2026-12-01T09:30:00Z", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),
        ("2026-12-01 09:30", datetime(2026, 12, 1, 9, 30, tzinfo=UTC)),  # no zone: UTC
        ("2026-12-01T09:30:00+01:00", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
    ],
)
def test_since_takes_a_time_or_how_long_ago(text: str, expected: datetime) -> None:
    from sluice.cli.event_commands import since_time

    assert since_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "10 minutes", "-5m", "2026-13-01", "999999999d"])
def test_since_refuses_anything_else_clearly(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["events", "--job-id", "j", f"--since={text}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --since: must be a time such as 2026-12-01T09:30:00Z or how long ago" in err
    assert repr(text) in err


def test_the_scheduler_refuses_a_since_that_is_no_time() -> None:
    request = scheduler_pb2.ListEventsRequest(job_id="j")
    assert _since(request) is None
    request.since.seconds = 10**13
    with pytest.raises(InvalidArgument, match="since is not a valid time"):
        _since(request)
    request.since.FromDatetime(NOW)
    assert _since(request) == NOW
