"""A workflow definition as a Graphviz DOT picture: what feeds what.

Pure (no Streamlit): the page hands the text to `st.graphviz_chart`, which lays it out in the
browser, so no system Graphviz is needed. The definition may be one the compiler refused, so
nothing here assumes it is well formed: entries that are not objects are skipped, and a
selector that points at a step the definition lacks is drawn as a dashed "missing" node, which
is usually exactly the mistake the user is looking for.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from sluice.workflow.selectors import Selector, is_selector, parse_selector

FAULT_COLOR = "#d62728"
INPUT_FILL = "#e8f1fb"
STEP_FILL = "#f4f4f4"
OUTPUT_FILL = "#eaf7ea"
FAULT_FILL = "#fde8e8"


def dot_string(text: str) -> str:
    """`text` as a quoted DOT string: quotes and backslashes escaped, so a name can neither end
    the string early nor be read as a DOT escape such as `\\l`; line breaks become `\\n`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n") + '"'


def input_node(name: str) -> str:
    return f"input:{name}"


def step_node(name: str) -> str:
    return f"step:{name}"


def output_node(name: str) -> str:
    return f"output:{name}"


def _entries(definition: Mapping[str, Any], section: str) -> list[dict[str, Any]]:
    """The section's entries that are objects with a string name (others cannot be drawn)."""
    found = definition.get(section)
    if not isinstance(found, list):
        return []
    return [entry for entry in found if isinstance(entry, dict) and isinstance(entry.get("name"), str)]


def _selectors(value: Any) -> Iterator[Selector]:
    """Every well-formed selector anywhere inside a property value (lists and objects included:
    Roboflow blocks take selectors inside e.g. `operations_parameters`)."""
    if is_selector(value):
        try:
            yield parse_selector(value)
        except ValueError:
            return  # malformed: the compiler says so; nothing to draw
    elif isinstance(value, list):
        for item in value:
            yield from _selectors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _selectors(item)


def _node(node_id: str, label: str, shape: str, fill: str, faulty: bool) -> str:
    style = f'style="filled,bold", color="{FAULT_COLOR}", fontcolor="{FAULT_COLOR}", fillcolor="{FAULT_FILL}"'
    if not faulty:
        style = f'style=filled, fillcolor="{fill}"'
    return f"  {dot_string(node_id)} [label={dot_string(label)}, shape={shape}, {style}];"


def _edge(source: str, target: str, label: str) -> str:
    return f"  {dot_string(source)} -> {dot_string(target)} [label={dot_string(label)}];"


def workflow_dot(
    definition: Mapping[str, Any],
    failing_steps: Collection[str] = (),
    failing_inputs: Collection[str] = (),
    failing_outputs: Collection[str] = (),
) -> str:
    """DOT text of `definition`: one node per input, step (its name and block type) and output;
    an edge for each selector, labelled with the reading step's property (for a workflow output,
    with the step output it takes, `*` for all). The failing ones are drawn red."""
    inputs = {entry["name"] for entry in _entries(definition, "inputs")}
    steps = {entry["name"] for entry in _entries(definition, "steps")}
    lines = [
        "digraph workflow {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9, color="#666666"];',
    ]
    drawn: set[str] = set()
    edges: list[str] = []
    missing: set[str] = set()

    def add(node_id: str, line: str) -> None:
        if node_id not in drawn:
            drawn.add(node_id)
            lines.append(line)

    def source_of(selector: Selector) -> str:
        if selector.source == "inputs":
            node_id = input_node(selector.name)
            if selector.name not in inputs:
                missing.add(node_id)
        else:
            node_id = step_node(selector.name)
            if selector.name not in steps:
                missing.add(node_id)
        return node_id

    for entry in _entries(definition, "inputs"):
        name = entry["name"]
        label = f"{name}\n{entry.get('type', '?')}"
        add(input_node(name), _node(input_node(name), label, "ellipse", INPUT_FILL, name in failing_inputs))
    for entry in _entries(definition, "steps"):
        name = entry["name"]
        label = f"{name}\n{entry.get('type', '?')}"
        add(step_node(name), _node(step_node(name), label, "box", STEP_FILL, name in failing_steps))
        for prop, value in entry.items():
            if prop in ("type", "name"):
                continue
            edges.extend(_edge(source_of(s), step_node(name), prop) for s in _selectors(value))
    for entry in _entries(definition, "outputs"):
        name = entry["name"]
        faulty = name in failing_outputs
        add(output_node(name), _node(output_node(name), name, "note", OUTPUT_FILL, faulty))
        for selector in _selectors(entry.get("selector")):
            label = selector.output if selector.source == "steps" else selector.name
            edges.append(_edge(source_of(selector), output_node(name), label))
    for node_id in sorted(missing):
        kind, _, name = node_id.partition(":")
        label = f"{name}\n(no such {kind})"
        add(
            node_id,
            f"  {dot_string(node_id)} [label={dot_string(label)}, shape=box, style=dashed, "
            f'color="{FAULT_COLOR}", fontcolor="{FAULT_COLOR}"];',
        )
    lines.extend(edges)
    lines.append("}")
    return "\n".join(lines) + "\n"
