"""Blocks from other packages, found through the `sluice.workflow_blocks` entry point group.

An entry point names a list of `BlockManifest`, or a function returning one. They are loaded
once, at the first compile (never at import). A plugin that fails to load, or whose block
types clash with known ones, is skipped with a warning so that it cannot break other
workflows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import metadata
from typing import Any

from sluice.workflow.blocks.base import BlockManifest

ENTRY_POINT_GROUP = "sluice.workflow_blocks"
log = logging.getLogger(__name__)


def _manifests_of(loaded: Any) -> list[BlockManifest]:
    found = loaded() if callable(loaded) else loaded
    if not isinstance(found, Iterable) or isinstance(found, str | bytes):
        raise TypeError(f"expected a list of BlockManifest, got {type(found).__name__}")
    manifests = list(found)
    for manifest in manifests:
        if not isinstance(manifest, BlockManifest):
            raise TypeError(f"expected BlockManifest, got {type(manifest).__name__}")
    return manifests


def discover_plugin_blocks() -> list[BlockManifest]:
    """Every manifest the installed plugin packages offer (a bad plugin is logged and skipped)."""
    manifests: list[BlockManifest] = []
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            manifests.extend(_manifests_of(entry_point.load()))
        except Exception:
            log.warning("workflow block plugin %r could not be loaded", entry_point.name, exc_info=True)
    return manifests
