"""Page tokens: opaque to clients, checked when they come back."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import asyncpg

from sluice.errors import InvalidArgument


def job_token(row: asyncpg.Record) -> str:
    """The token of the page after `row` (jobs are listed newest first)."""
    raw = json.dumps([row["created_at"].isoformat(), row["job_id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_job_token(token: str) -> tuple[datetime, str]:
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return datetime.fromisoformat(created), str(job_id)
    except (ValueError, TypeError):
        raise InvalidArgument("invalid page token (use the next_page_token of the previous page)") from None


def decode_log_token(token: str) -> int:
    if not token.isdigit():
        raise InvalidArgument("invalid page token (use the next_page_token of the previous page)")
    return int(token)
