"""What a block is: a manifest the compiler checks, and a runner built from it.

A block runs on a batch: `run` takes one dict of resolved properties per element (an input
image, or a crop a fan-out step made) and the elements themselves, and returns one dict of
outputs per element, so a model block can send the whole batch to its model at once. A fan-out
block (`output_dimensionality_offset=1`) returns, per element, a list of `Child`ren instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from sluice.models.catalog import BuiltinCatalog, ModelCatalog
from sluice.workflow.kinds import Kind

Check = Callable[[Any], None]
"""Validates one concrete property value; raises ValueError with a message for the user."""

TYPE_PATTERN = re.compile(r"^[a-z0-9_\-]+/[a-z0-9_]+@v[0-9]+$")
PROPERTY_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Property:
    """One property of a step: what it may be wired to, and whether it is needed."""

    kinds: tuple[Kind, ...]
    required: bool = False
    default: Any = None
    selector_only: bool = False
    """True when the value must come from a selector (images, predictions)."""
    check: Check | None = None
    description: str = ""
    dimensionality_offset: int = 0
    """1 when the step receives, per element, the list of values of that element's children
    (the recognised texts of every crop of an image, for a step that runs per image)."""
    model_tasks: tuple[str, ...] = ()
    """For a model id: the model tasks the block can run (checked against the catalog)."""
    parameters_inside: bool = False
    """True when the value is a JSON object whose values may be `$inputs.<name>` selectors."""


@dataclass(frozen=True)
class BlockContext:
    """What the worker hands to blocks; each block gets the fields its manifest names."""

    intra_op_threads: int | None = None
    models: ModelCatalog = field(default_factory=BuiltinCatalog)


CONTEXT_FIELDS = frozenset(f.name for f in fields(BlockContext))


@dataclass(frozen=True)
class Element:
    """One thing a step runs on: an input image, or a child a fan-out step made (a crop).

    `index` is the position in the batch, then among the children of each fan-out step:
    (image,) for an input image, (image, crop) for a crop. `id` is what results made from this
    element name as their `parent_id` (for a crop: the id of the detection it was cut from).
    `metadata` is the input image's (`video_id`, `frame_number`, ...), shared by its children.
    """

    index: tuple[int, ...]
    id: str
    metadata: Mapping[str, Any]


@dataclass(frozen=True)
class Child:
    """One output of a fan-out step: its outputs and the id its own results will carry."""

    id: str
    outputs: dict[str, Any]


class Block(Protocol):
    def run(self, batch: list[dict[str, Any]], elements: Sequence[Element]) -> list[Any]:
        """One dict of property values per element -> one dict of outputs per element.

        A fan-out block returns one list of `Child` per element instead.
        """
        ...


def _check_property(block_type: str, name: str, prop: Property) -> None:
    where = f"block {block_type}: property {name!r}"
    if not PROPERTY_PATTERN.match(name):
        raise ValueError(f"{where}: names are lower-case letters, digits and '_'")
    if not prop.kinds or not all(isinstance(k, Kind) for k in prop.kinds):
        raise ValueError(f"{where}: kinds must be a non-empty tuple of Kind")
    if prop.required and prop.default is not None:
        raise ValueError(f"{where}: a required property has no default")
    if prop.selector_only and prop.kinds == (Kind.PARAMETER,):
        raise ValueError(f"{where}: a parameter cannot be selector-only")
    if prop.dimensionality_offset not in (0, 1):
        raise ValueError(f"{where}: dimensionality_offset must be 0 or 1")
    if prop.dimensionality_offset and not prop.selector_only:
        raise ValueError(f"{where}: a nested property must be selector-only")
    if prop.default is not None and prop.check is not None:
        prop.check(prop.default)


@dataclass(frozen=True)
class BlockManifest:
    """A versioned block type: its properties, outputs, and how to build its runner.

    `build` is called with the `BlockContext` fields named in `init_parameters`, as keywords.
    """

    type: str
    description: str
    properties: Mapping[str, Property]
    outputs: Mapping[str, Kind]
    build: Callable[..., Block]
    init_parameters: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    """Other names accepted for a property (Roboflow's `images` for `image`)."""
    ignored: frozenset[str] = frozenset()
    """Properties accepted for Roboflow compatibility that have no effect here."""
    type_aliases: tuple[str, ...] = ()
    """Other type names this block answers to (`roboflow_core/dynamic_crop@v1`)."""
    output_dimensionality_offset: int = 0
    """1 for a fan-out block: each element gives a list of children (one crop per detection)."""

    def __post_init__(self) -> None:
        """Refuse a malformed manifest when it is made, so a bad plugin never reaches a run."""
        if not TYPE_PATTERN.match(self.type):
            raise ValueError(f"block type {self.type!r} must look like 'namespace/name@v1'")
        for name, prop in self.properties.items():
            _check_property(self.type, name, prop)
        if not self.outputs or not all(isinstance(k, Kind) for k in self.outputs.values()):
            raise ValueError(f"block {self.type}: outputs must map names to Kind")
        for alias, target in self.aliases.items():
            if target not in self.properties or alias in self.properties:
                raise ValueError(f"block {self.type}: alias {alias!r} -> {target!r} is not a property")
        unknown = set(self.init_parameters) - CONTEXT_FIELDS
        if unknown:
            raise ValueError(
                f"block {self.type}: init_parameters {sorted(unknown)} are not in BlockContext "
                f"({', '.join(sorted(CONTEXT_FIELDS))})"
            )
        if self.output_dimensionality_offset not in (0, 1):
            raise ValueError(f"block {self.type}: output_dimensionality_offset must be 0 or 1")
        if not callable(self.build):
            raise ValueError(f"block {self.type}: build must be callable")

    def create(self, context: BlockContext) -> Block:
        """The block's runner, built with what its manifest says it needs."""
        return self.build(**{name: getattr(context, name) for name in self.init_parameters})
