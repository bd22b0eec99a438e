"""Workflows in Roboflow's JSON shape: compile (parse, validate, order, build) and run."""

from sluice.workflow.compiler import canonical_json, compile_workflow, workflow_digest
from sluice.workflow.executor import CompiledWorkflow
from sluice.workflow.kinds import Kind
from sluice.workflow.serialize import serialize_detections, to_json_value

__all__ = [
    "CompiledWorkflow",
    "Kind",
    "canonical_json",
    "compile_workflow",
    "serialize_detections",
    "to_json_value",
    "workflow_digest",
]
