"""Block types that are refused because they need the worker's machine itself."""

from __future__ import annotations

FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("custom_python", "it runs arbitrary Python code on the worker"),
    ("dynamic_block", "it runs arbitrary Python code on the worker"),
    ("file_sink", "it writes to the worker's local file system; results go to the output batch"),
    ("environment_secret", "it reads secrets from the worker's environment"),
)


def refusal(block_type: str) -> str | None:
    """Why `block_type` is refused, or None when it is not."""
    lowered = block_type.lower()
    for marker, reason in FORBIDDEN:
        if marker in lowered:
            return reason
    return None
