"""A job's options as the caller gave them: checked, with one clear line for each mistake."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sluice.errors import InvalidArgument
from sluice.v1 import common_pb2, scheduler_pb2
from sluice.workflow import CompiledWorkflow

FORMAT_NAMES = {
    common_pb2.AGGREGATION_FORMAT_JSONL: "jsonl",
    common_pb2.AGGREGATION_FORMAT_CSV: "csv",
}


@dataclass(frozen=True)
class JobLimits:
    workers_per_machine: int
    max_parallel_tasks: int
    max_runtime_s: float


def job_limits(workers_per_machine: int, max_parallel_tasks: int, max_runtime_s: float | None) -> JobLimits:
    """Check a job's limits; 0 means none (for the cap: unset means none, and it must be > 0)."""
    if workers_per_machine < 0:
        raise InvalidArgument("workers per machine must be positive")
    if max_parallel_tasks < 0:
        raise InvalidArgument("max parallel tasks must be positive")
    if max_runtime_s is not None and not max_runtime_s > 0:
        raise InvalidArgument(f"max runtime seconds must be greater than 0, not {max_runtime_s:g}")
    return JobLimits(workers_per_machine, max_parallel_tasks, max_runtime_s or 0.0)


def parse_parameters(text: str) -> dict[str, Any]:
    """A job's workflow parameters: a JSON object (empty text: none)."""
    try:
        params = json.loads(text or "{}")
    except json.JSONDecodeError as error:
        raise InvalidArgument(f"workflow parameters are not valid JSON: {error}") from None
    if not isinstance(params, dict):
        raise InvalidArgument("workflow parameters must be a JSON object")
    return params


def job_parameters(
    compiled: CompiledWorkflow, request: scheduler_pb2.CreateJobRequest, params: dict[str, Any]
) -> str:
    """Check the job's workflow parameters and image options; returns the parameters as JSON."""
    image_input = compiled.image_input_name
    if request.image_input_name and request.image_input_name != image_input:
        raise InvalidArgument(
            f"the workflow's image input is named '{image_input}', not '{request.image_input_name}'"
        )
    unknown = sorted(set(request.image_outputs_to_save) - set(compiled.image_outputs))
    if unknown:
        known = ", ".join(compiled.image_outputs) or "none"
        raise InvalidArgument(
            f"unknown image outputs {', '.join(unknown)}; the workflow's image outputs: {known}"
        )
    compiled.check_parameters(params)
    return json.dumps(params, sort_keys=True)


def format_enum(name: str) -> common_pb2.AggregationFormat:
    for value, fmt in FORMAT_NAMES.items():
        if fmt == name:
            return value
    return common_pb2.AGGREGATION_FORMAT_JSONL
