"""Which block types exist: the built-in blocks, their Roboflow names, and plugin blocks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from sluice.workflow import plugins
from sluice.workflow.blocks.base import BlockManifest
from sluice.workflow.blocks.bounding_box_visualization import v1 as bounding_box_visualization_v1
from sluice.workflow.blocks.byte_tracker import v1 as byte_tracker_v1
from sluice.workflow.blocks.classification_model import v1 as classification_model_v1
from sluice.workflow.blocks.detections_filter import v1 as detections_filter_v1
from sluice.workflow.blocks.detections_transformation import v1 as detections_transformation_v1
from sluice.workflow.blocks.dynamic_crop import v1 as dynamic_crop_v1
from sluice.workflow.blocks.label_visualization import v1 as label_visualization_v1
from sluice.workflow.blocks.object_detection_model import v1 as object_detection_model_v1
from sluice.workflow.blocks.ocr import v1 as ocr_v1
from sluice.workflow.blocks.property_definition import v1 as property_definition_v1

BUILTIN_BLOCKS: tuple[BlockManifest, ...] = (
    object_detection_model_v1.MANIFEST,
    classification_model_v1.MANIFEST,
    dynamic_crop_v1.MANIFEST,
    detections_filter_v1.MANIFEST,
    detections_transformation_v1.MANIFEST,
    ocr_v1.MANIFEST,
    property_definition_v1.MANIFEST,
    bounding_box_visualization_v1.MANIFEST,
    label_visualization_v1.MANIFEST,
    byte_tracker_v1.MANIFEST,
)

log = logging.getLogger(__name__)


class BlockRegistry:
    """Block types by name and alias; plugin blocks join on the first look-up."""

    def __init__(
        self,
        builtin: Sequence[BlockManifest],
        discover: Callable[[], list[BlockManifest]] = plugins.discover_plugin_blocks,
    ) -> None:
        self._lock = threading.Lock()
        self._discover = discover
        self._loaded = False
        self._builtin = tuple(builtin)
        self._by_name: dict[str, BlockManifest] = {}
        for manifest in self._builtin:
            if not self._add(manifest):
                raise ValueError(f"built-in block {manifest.type} clashes with another")

    def _add(self, manifest: BlockManifest) -> bool:
        names = (manifest.type, *manifest.type_aliases)
        if any(name in self._by_name for name in names):
            return False
        for name in names:
            self._by_name[name] = manifest
        return True

    def _ensure_plugins(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for manifest in self._discover():
                if not self._add(manifest):
                    log.warning("plugin block %s clashes with a known block type; skipped", manifest.type)

    def find(self, block_type: str) -> BlockManifest | None:
        """The manifest for a block type or one of its aliases."""
        self._ensure_plugins()
        return self._by_name.get(block_type)

    def known_types(self) -> list[str]:
        """Every type name accepted (our names and aliases), sorted."""
        self._ensure_plugins()
        return sorted(self._by_name)

    def own_types(self) -> list[str]:
        """The canonical type of every block, sorted."""
        self._ensure_plugins()
        return sorted({manifest.type for manifest in self._by_name.values()})

    def reload_plugins(self) -> None:
        """Look for plugin blocks again at the next look-up (tests; a package installed late)."""
        with self._lock:
            self._loaded = False
            self._by_name = {}
            for manifest in self._builtin:
                self._add(manifest)


REGISTRY = BlockRegistry(BUILTIN_BLOCKS)
