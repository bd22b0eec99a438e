"""The object store keeps every object name as itself: nothing in a name is read as URL syntax."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from sluice import storage
from sluice.ids import safe_file_name

ODD_NAMES = [
    "scan::001.jpg",
    "scan::002.jpg",
    "simplecache::x.jpg",
    "with space.jpg",
    "ünïcødé/日本.jpg",
    "hash#1.jpg",
    "what?.jpg",
    "what?x=1.jpg",
    "percent%20.jpg",
    "[x].jpg",
    "*.jpg",
    "a*b/c.jpg",
    "file:/inside.jpg",
    "s3:/bucket/x.jpg",
    "~tilde.jpg",
]


@pytest.fixture(params=["file", "memory"])
def folder_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A folder of a local store, or of an in-memory one (not a LocalFileSystem)."""
    if request.param == "file":
        return f"file://{tmp_path}/objects/alpha/odd"
    return f"memory://sluice-{secrets.token_hex(4)}/alpha/odd"


def test_odd_names_are_stored_listed_and_read_back_as_themselves(folder_url: str) -> None:
    assert all(safe_file_name(name) == name for name in ODD_NAMES)  # names staging accepts
    contents = {name: f"bytes of {name}".encode() for name in ODD_NAMES}
    for name, data in contents.items():
        storage.write_bytes(folder_url, name, data)
    assert storage.list_objects(folder_url) == {name: len(data) for name, data in contents.items()}
    for name, data in contents.items():
        assert storage.read_bytes(folder_url, name) == data

    # A name that reads as a pattern removes only itself.
    storage.remove_object(folder_url, "*.jpg")
    storage.remove_object(folder_url, "[x].jpg")
    assert set(storage.list_objects(folder_url)) == set(ODD_NAMES) - {"*.jpg", "[x].jpg"}
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(folder_url, "*.jpg")


def test_a_name_like_a_temporary_is_still_listed(folder_url: str) -> None:
    storage.write_bytes(folder_url, "clip.tmp-1.mp4", b"1")
    storage.write_bytes(folder_url, "notes.tmp-cafe", b"2")
    assert storage.list_objects(folder_url) == {"clip.tmp-1.mp4": 1, "notes.tmp-cafe": 1}


def test_a_failed_local_write_leaves_no_temporary(tmp_path: Path) -> None:
    folder_url = f"file://{tmp_path}/objects"
    storage.write_bytes(folder_url, "day/a.mov", b"1")
    with pytest.raises(IsADirectoryError):
        storage.write_bytes(folder_url, "day", b"2")
    assert storage.list_objects(folder_url) == {"day/a.mov": 1}
    assert sorted(p.name for p in (tmp_path / "objects").iterdir()) == ["day"]
