"""The New job form without Streamlit: a workflow's declared parameters as form fields, and the
form's values as a CreateJobRequest with one message per field that is wrong.

Kept pure so every check the page makes before calling the scheduler is a plain function: the
page draws widgets from `parameter_fields`, hands what they hold to `build_request`, and shows
each message of `errors` under the field it names. A refusal from the scheduler is mapped back
to a field with `field_for_message` when its text names one.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import SluiceError
from sluice.ids import ID_RULE, validate_id
from sluice.v1 import common_pb2, scheduler_pb2
from sluice.webhook_urls import validate_url
from sluice.workflow.parameters import ParameterSpec
from sluice.workflow.spec import load_definition, parse_workflow

MACHINE_TYPES = {"cpu": common_pb2.MACHINE_TYPE_CPU, "gpu": common_pb2.MACHINE_TYPE_GPU}
FORMATS = {"jsonl": common_pb2.AGGREGATION_FORMAT_JSONL, "csv": common_pb2.AGGREGATION_FORMAT_CSV}
MAX_VIDEO_FPS = 1000.0  # the scheduler's limit (video_planning.MAX_VIDEO_FPS)
MIN_SEGMENT_S = 5.0  # the scheduler's shortest video segment

# Error keys: one per field of the form; a parameter's is PARAM_PREFIX + its name.
BATCH, WORKFLOW, JOB_ID, WORKERS, PARALLEL = "batch", "workflow", "job_id", "workers", "parallel"
FPS, SEGMENT, RUNTIME, FAILURE_RATE = "fps", "segment", "runtime", "failure_rate"
NOTIFICATIONS, OUTPUTS, MACHINE, FORMAT, FORM = "notifications", "outputs", "machine", "format", "form"
PARAM_PREFIX = "param:"

# Widgets a parameter can get.
SLIDER_01, INTEGER, NUMBER, BOOLEAN, TEXT, JSON_TEXT = (
    "slider01",
    "integer",
    "number",
    "boolean",
    "text",
    "json",
)


@dataclass(frozen=True)
class ParameterField:
    """One declared workflow parameter and the widget that edits it."""

    name: str
    default: Any
    kinds: tuple[str, ...]
    widget: str

    @property
    def error_key(self) -> str:
        return PARAM_PREFIX + self.name

    def initial(self) -> Any:
        """What the widget shows first: the default, as that widget holds it."""
        if self.widget == JSON_TEXT:
            return "" if self.default is None else json.dumps(self.default)
        if self.widget == TEXT:
            return "" if self.default is None else str(self.default)
        if self.widget == BOOLEAN:
            return bool(self.default)
        if self.widget == INTEGER:
            return int(self.default) if _is_number(self.default) else 0
        if self.widget in (NUMBER, SLIDER_01):
            return float(self.default) if _is_number(self.default) else 0.0
        return self.default


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _widget(kinds: tuple[str, ...], default: Any) -> str:
    """The widget for a parameter: from its declared kinds, else from its default's type."""
    known = set(kinds)
    if "float_zero_to_one" in known and known <= {"float_zero_to_one", "float", "integer"}:
        return SLIDER_01
    if known and known <= {"integer"}:
        return INTEGER
    if known and known <= {"float", "integer"}:
        return NUMBER
    if known == {"boolean"}:
        return BOOLEAN
    if known and known <= {"string", "roboflow_model_id"}:
        return TEXT
    if known:
        return JSON_TEXT  # lists, dictionaries, several kinds: any JSON value
    if isinstance(default, bool):
        return BOOLEAN
    if isinstance(default, int):
        return INTEGER
    if isinstance(default, float):
        return NUMBER
    if isinstance(default, str):
        return TEXT
    return JSON_TEXT


def parameter_fields(definition_json: str) -> list[ParameterField]:
    """The workflow's declared parameters (inputs of type WorkflowParameter), in their order."""
    try:
        spec = parse_workflow(load_definition(definition_json))
    except SluiceError:
        return []  # a stored workflow compiled once; a broken one simply shows no parameters
    return [
        ParameterField(i.name, i.default_value, i.kind, _widget(i.kind, i.default_value))
        for i in spec.inputs
        if i.is_parameter
    ]


def image_outputs(definition_json: str) -> tuple[str, ...] | None:
    """The workflow's outputs that are one image per input image, as the compiler tells them
    (what a worker can save); None when it cannot tell here (e.g. a registered model it does not
    know), and the user types the names instead."""
    try:
        from sluice.workflow import compile_workflow

        return compile_workflow(definition_json).image_outputs
    except Exception:
        return None


@dataclass
class JobFormValues:
    """What the form's widgets hold; optional numbers are text so that empty means unset."""

    input_kind: str = "images"
    batch_id: str = ""
    workflow_id: str = ""
    machine_type: str = "cpu"
    workers_per_machine: int = 0
    max_parallel_tasks: int = 0
    save_image_outputs: bool = False
    image_outputs_to_save: list[str] = field(default_factory=list)
    max_video_fps: str = ""
    video_segment_seconds: str = ""
    max_runtime_seconds: str = ""
    max_image_failure_rate: str = ""
    aggregation_format: str = "jsonl"
    parameters: dict[str, Any] = field(default_factory=dict)
    """Parameter name -> what its widget holds (JSON text for JSON_TEXT widgets)."""
    job_id: str = ""
    notifications_url: str = ""


@dataclass
class FormResult:
    request: scheduler_pb2.CreateJobRequest | None
    errors: dict[str, str]
    """Error key -> what is wrong with that field; empty when `request` is set."""


def _optional_number(text: str) -> float | None:
    """An optional number field: None when empty; ValueError when not a finite number."""
    text = text.strip()
    if not text:
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _number_field(errors: dict[str, str], key: str, text: str, check: Any, message: str) -> float | None:
    try:
        value = _optional_number(text)
    except ValueError:
        errors[key] = f"not a number: {text.strip()!r}"
        return None
    if value is not None and not check(value):
        errors[key] = message.format(value=value)
        return None
    return value


def parameter_value(param: ParameterField, held: Any) -> Any:
    """The value a parameter's widget holds, as JSON would carry it; ValueError says why not."""
    if param.widget == JSON_TEXT:
        text = str(held or "").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
            ) from None
    elif param.widget == INTEGER:
        value = int(held)
    elif param.widget in (NUMBER, SLIDER_01):
        value = float(held)
    elif param.widget == BOOLEAN:
        value = bool(held)
    else:
        value = str(held)
    ParameterSpec(param.name, param.default, param.kinds).check(value)
    return value


def _check_id(errors: dict[str, str], key: str, value: str, what: str, required: bool) -> str:
    value = value.strip()
    if not value:
        if required:
            errors[key] = f"choose a {what}"
        return ""
    try:
        return validate_id(value, what)
    except SluiceError:
        errors[key] = f"invalid {what} {value!r}: use {ID_RULE}"
        return ""


def build_request(values: JobFormValues, params: list[ParameterField]) -> FormResult:
    """The CreateJobRequest the form describes, or every field's mistake (nothing is sent then)."""
    errors: dict[str, str] = {}
    batch_id = _check_id(errors, BATCH, values.batch_id, "batch id", required=True)
    workflow_id = _check_id(errors, WORKFLOW, values.workflow_id, "workflow id", required=True)
    job_id = _check_id(errors, JOB_ID, values.job_id, "job id", required=False)
    if values.machine_type not in MACHINE_TYPES:
        errors[MACHINE] = "machine type must be cpu or gpu"
    if values.aggregation_format not in FORMATS:
        errors[FORMAT] = "aggregation format must be jsonl or csv"
    if values.workers_per_machine < 0:
        errors[WORKERS] = "workers per machine must be 0 (the worker's own) or more"
    if values.max_parallel_tasks < 0:
        errors[PARALLEL] = "max parallel tasks must be 0 (no limit) or more"
    rate = _number_field(
        errors, FAILURE_RATE, values.max_image_failure_rate, lambda v: 0 <= v <= 1,
        "the failure rate is a fraction between 0 and 1 (0.05 is 5%), not {value:g}",
    )  # fmt: skip
    runtime = _number_field(
        errors, RUNTIME, values.max_runtime_seconds, lambda v: v > 0,
        "max runtime must be more than 0 seconds (leave it empty for no cap), not {value:g}",
    )  # fmt: skip
    videos = values.input_kind == "videos"
    fps = segment = None
    if videos:
        fps = _number_field(
            errors, FPS, values.max_video_fps, lambda v: 0 < v <= MAX_VIDEO_FPS,
            f"max video fps must be more than 0 and at most {MAX_VIDEO_FPS:g} (empty: every frame), "
            "not {value:g}",
        )  # fmt: skip
        segment = _number_field(
            errors, SEGMENT, values.video_segment_seconds, lambda v: v >= MIN_SEGMENT_S,
            f"segments are at least {MIN_SEGMENT_S:g} seconds long (empty: 300), not {{value:g}}",
        )  # fmt: skip
    url = values.notifications_url.strip()
    if url:
        try:
            validate_url(url)
        except SluiceError as error:
            errors[NOTIFICATIONS] = error.message
    chosen: dict[str, Any] = {}
    for param in params:
        try:
            value = parameter_value(param, values.parameters.get(param.name, param.initial()))
        except (ValueError, TypeError) as error:
            errors[param.error_key] = f"parameter '{param.name}': {error}"
            continue
        if value is not None and value != param.default:
            chosen[param.name] = value
    if errors:
        return FormResult(None, errors)
    request = scheduler_pb2.CreateJobRequest(
        job_id=job_id,
        workflow_id=workflow_id,
        batch_id=batch_id,
        machine_type=MACHINE_TYPES[values.machine_type],
        workers_per_machine=values.workers_per_machine,
        max_parallel_tasks=values.max_parallel_tasks,
        save_image_outputs=values.save_image_outputs,
        aggregation_format=FORMATS[values.aggregation_format],
        notifications_url=url,
    )
    if values.save_image_outputs:
        request.image_outputs_to_save.extend(values.image_outputs_to_save)
    if rate is not None:
        request.max_image_failure_rate = rate
    if runtime is not None:
        request.max_runtime_seconds = runtime
    if fps is not None:
        request.max_video_fps = fps
    if segment is not None:
        request.video_segment_seconds = segment
    if chosen:
        request.workflow_params_json = json.dumps(chosen, sort_keys=True)
    return FormResult(request, {})


_PARAMETER = re.compile(r"parameter '([^']+)'")
_FIELD_WORDS = [
    ("failure rate", FAILURE_RATE),
    ("image output", OUTPUTS),
    ("video fps", FPS),
    ("--max-video-fps", FPS),
    ("segment", SEGMENT),
    ("runtime", RUNTIME),
    ("workers per machine", WORKERS),
    ("parallel tasks", PARALLEL),
    ("notifications url", NOTIFICATIONS),
    ("job id", JOB_ID),
    ("job '", JOB_ID),
    ("workflow", WORKFLOW),
    ("batch", BATCH),
    ("machine type", MACHINE),
    ("aggregation format", FORMAT),
]


def field_for_message(message: str, params: list[ParameterField]) -> str:
    """The error key of the field a scheduler's refusal names (FORM when it names none)."""
    found = _PARAMETER.search(message)
    names = {p.name for p in params}
    if found and found.group(1) in names:
        return PARAM_PREFIX + found.group(1)
    lowered = message.lower()
    for words, key in _FIELD_WORDS:
        if words in lowered:
            return key
    return FORM
