"""Checks of concrete property values: each raises ValueError with a message for the user."""

from __future__ import annotations

from typing import Any

from sluice.workflow.blocks.base import Check


def check_fraction(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"must be a number between 0 and 1, got {value!r}")


def check_number(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")


def check_non_negative(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"must be a number >= 0, got {value!r}")


def check_positive(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"must be a number > 0, got {value!r}")


def check_positive_int(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"must be a positive integer, got {value!r}")


def check_non_negative_int(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be an integer >= 0, got {value!r}")


def check_int(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")


def check_bool(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")


def check_string(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, got {value!r}")


def check_optional_strings(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"must be a list of strings, got {value!r}")


def check_one_of(*choices: str) -> Check:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")

    return check
