"""Rules for the names users choose: batch, job and workflow ids, and file names inside a batch."""

from __future__ import annotations

import posixpath
import re
import secrets

from sluice.errors import InvalidArgument

ID_RULE = "lower case letters, digits, '-' and '_', at most 64 characters"
_ID_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")
MAX_FILE_NAME_LENGTH = 512
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".mkv",
        ".webm",
        ".avi",
        ".mpg",
        ".mpeg",
        ".ts",
        ".mts",
        ".m2ts",
        ".flv",
        ".wmv",
        ".3gp",
    }
)
RESERVED_FOLDER = ".sluice"
"""The first folder of a batch that Sluice keeps for its own objects (e.g. frame indexes)."""


def validate_id(value: str, what: str = "batch id") -> str:
    """Return `value` when it follows the id rule, else raise InvalidArgument naming the rule."""
    if not _ID_PATTERN.match(value or ""):
        raise InvalidArgument(f"invalid {what} {value!r}: use {ID_RULE}")
    return value


def new_id(prefix: str) -> str:
    """A fresh id that follows the id rule, e.g. 'job-3f9a1c2b7d'."""
    return f"{prefix}-{secrets.token_hex(5)}"


def safe_file_name(name: str) -> str:
    """Normalise a file name inside a batch; refuse anything that could escape the batch."""
    if not name or "\x00" in name or len(name) > MAX_FILE_NAME_LENGTH:
        raise InvalidArgument(f"invalid file name {name!r}: empty, too long or has a NUL byte")
    if "\\" in name:
        raise InvalidArgument(f"invalid file name {name!r}: use '/' as the folder separator")
    if name.startswith("/"):
        raise InvalidArgument(f"invalid file name {name!r}: absolute paths are not allowed")
    parts = name.split("/")
    if any(part == ".." for part in parts):
        raise InvalidArgument(f"invalid file name {name!r}: '..' is not allowed")
    normalised = posixpath.normpath(name)
    if normalised in {".", ""} or normalised.startswith("../"):
        raise InvalidArgument(f"invalid file name {name!r}")
    return normalised


def is_reserved_name(name: str) -> bool:
    """True for a (normalised) file name inside the folder Sluice keeps for itself."""
    return name.split("/", 1)[0] == RESERVED_FOLDER


def reserved_name_reason(name: str) -> str:
    return f"reserved name {name!r}: '{RESERVED_FOLDER}/' holds Sluice's own files; rename the file"


def is_image_name(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_video_name(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in VIDEO_EXTENSIONS
