"""When names of one batch clash: a file and a folder of the batch may not share a name.

"a.jpg" and "a.jpg/b.png" cannot both be objects of a batch (a local store could not hold them,
and a download could not unpack them). The database answers for the objects already recorded
(Repository.put_objects); `clashing_within` answers within one group of new names, in the
order they came, as if they had been recorded one at a time.
"""

from __future__ import annotations

from collections.abc import Iterable


def ancestors(name: str) -> list[str]:
    """The folders `name` sits in, outermost first: "a/b/c.jpg" -> ["a", "a/b"]."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def clashing_within(names: Iterable[str]) -> set[str]:
    """The names that clash with an earlier name of `names` (the earlier one stays)."""
    files: set[str] = set()
    folders: set[str] = set()
    clashing: set[str] = set()
    for name in names:
        above = ancestors(name)
        if name in folders or any(folder in files for folder in above):
            clashing.add(name)
            continue
        files.add(name)
        folders.update(above)
    return clashing
