"""Workflows in Roboflow's JSON shape: compile (parse, validate, order, build) and run.

See README.md beside this file for the nesting of outputs made per crop, detection ids, and
how plugin packages add blocks.
"""

from sluice.workflow.compiler import canonical_json, compile_workflow, workflow_digest
from sluice.workflow.executor import DEFAULT_STREAM, CompiledWorkflow
from sluice.workflow.kinds import Kind
from sluice.workflow.plugins import ENTRY_POINT_GROUP
from sluice.workflow.serialize import serialize_detections, to_json_value

__all__ = [
    "DEFAULT_STREAM",
    "ENTRY_POINT_GROUP",
    "CompiledWorkflow",
    "Kind",
    "canonical_json",
    "compile_workflow",
    "serialize_detections",
    "to_json_value",
    "workflow_digest",
]
