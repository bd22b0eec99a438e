"""The block types a workflow may use, their Roboflow aliases, and the ones refused."""

from __future__ import annotations

from sluice.workflow.blocks.base import BlockManifest
from sluice.workflow.blocks.bounding_box_visualization import v1 as bounding_box_visualization_v1
from sluice.workflow.blocks.object_detection_model import v1 as object_detection_model_v1

BLOCKS: dict[str, BlockManifest] = {
    manifest.type: manifest
    for manifest in (
        object_detection_model_v1.MANIFEST,
        bounding_box_visualization_v1.MANIFEST,
    )
}

ALIASES: dict[str, str] = {
    "roboflow_core/roboflow_object_detection_model@v1": "sluice/object_detection_model@v1",
    "roboflow_core/roboflow_object_detection_model@v2": "sluice/object_detection_model@v1",
    "roboflow_core/bounding_box_visualization@v1": "sluice/bounding_box_visualization@v1",
}

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


def known_types() -> list[str]:
    return sorted([*BLOCKS, *ALIASES])


def find_block(block_type: str) -> BlockManifest | None:
    """The manifest for a block type or one of its aliases."""
    return BLOCKS.get(ALIASES.get(block_type, block_type))
