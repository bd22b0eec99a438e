from sluice.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(_message.Message):
    __slots__ = ("task_id", "job_id", "workspace", "stage", "input_names", "input_url", "output_url", "workflow_json", "save_image_outputs", "aggregation_format", "machine_type", "max_archive_bytes", "workflow_params_json", "image_outputs_to_save", "attempt", "failed_tasks", "video", "video_job")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    INPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    INPUT_URL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_URL_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_JSON_FIELD_NUMBER: _ClassVar[int]
    SAVE_IMAGE_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_ARCHIVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_OUTPUTS_TO_SAVE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FAILED_TASKS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    VIDEO_JOB_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    workspace: str
    stage: str
    input_names: _containers.RepeatedScalarFieldContainer[str]
    input_url: str
    output_url: str
    workflow_json: str
    save_image_outputs: bool
    aggregation_format: _common_pb2.AggregationFormat
    machine_type: _common_pb2.MachineType
    max_archive_bytes: int
    workflow_params_json: str
    image_outputs_to_save: _containers.RepeatedScalarFieldContainer[str]
    attempt: int
    failed_tasks: _containers.RepeatedCompositeFieldContainer[FailedTask]
    video: VideoSegment
    video_job: bool
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., workspace: _Optional[str] = ..., stage: _Optional[str] = ..., input_names: _Optional[_Iterable[str]] = ..., input_url: _Optional[str] = ..., output_url: _Optional[str] = ..., workflow_json: _Optional[str] = ..., save_image_outputs: _Optional[bool] = ..., aggregation_format: _Optional[_Union[_common_pb2.AggregationFormat, str]] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ..., max_archive_bytes: _Optional[int] = ..., workflow_params_json: _Optional[str] = ..., image_outputs_to_save: _Optional[_Iterable[str]] = ..., attempt: _Optional[int] = ..., failed_tasks: _Optional[_Iterable[_Union[FailedTask, _Mapping]]] = ..., video: _Optional[_Union[VideoSegment, _Mapping]] = ..., video_job: _Optional[bool] = ...) -> None: ...

class VideoSegment(_message.Message):
    __slots__ = ("name", "index", "count", "start_s", "end_s", "warmup_start_s", "max_fps", "frames_total", "info")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    WARMUP_START_S_FIELD_NUMBER: _ClassVar[int]
    MAX_FPS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    name: str
    index: int
    count: int
    start_s: float
    end_s: float
    warmup_start_s: float
    max_fps: float
    frames_total: int
    info: _common_pb2.VideoInfo
    def __init__(self, name: _Optional[str] = ..., index: _Optional[int] = ..., count: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., warmup_start_s: _Optional[float] = ..., max_fps: _Optional[float] = ..., frames_total: _Optional[int] = ..., info: _Optional[_Union[_common_pb2.VideoInfo, _Mapping]] = ...) -> None: ...

class FailedTask(_message.Message):
    __slots__ = ("task_id", "input_names", "error")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    input_names: _containers.RepeatedScalarFieldContainer[str]
    error: str
    def __init__(self, task_id: _Optional[str] = ..., input_names: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "job_id", "stage", "ok", "items_done", "items_failed", "error", "worker_id", "duration_s", "machine_type", "stopped", "delivery", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ITEMS_DONE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FAILED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    stage: str
    ok: bool
    items_done: int
    items_failed: int
    error: str
    worker_id: str
    duration_s: float
    machine_type: _common_pb2.MachineType
    stopped: bool
    delivery: int
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., stage: _Optional[str] = ..., ok: _Optional[bool] = ..., items_done: _Optional[int] = ..., items_failed: _Optional[int] = ..., error: _Optional[str] = ..., worker_id: _Optional[str] = ..., duration_s: _Optional[float] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ..., stopped: _Optional[bool] = ..., delivery: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class TaskProgress(_message.Message):
    __slots__ = ("task_id", "job_id", "worker_id", "items_done", "items_failed", "elapsed_s", "delivery", "attempt", "machine_type")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_DONE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FAILED_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    job_id: str
    worker_id: str
    items_done: int
    items_failed: int
    elapsed_s: float
    delivery: int
    attempt: int
    machine_type: _common_pb2.MachineType
    def __init__(self, task_id: _Optional[str] = ..., job_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., items_done: _Optional[int] = ..., items_failed: _Optional[int] = ..., elapsed_s: _Optional[float] = ..., delivery: _Optional[int] = ..., attempt: _Optional[int] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ...) -> None: ...

class StopTasks(_message.Message):
    __slots__ = ("job_id", "attempt", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attempt: int
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., attempt: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class WorkerLog(_message.Message):
    __slots__ = ("job_id", "task_id", "worker_id", "severity", "message", "time")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    task_id: str
    worker_id: str
    severity: int
    message: str
    time: float
    def __init__(self, job_id: _Optional[str] = ..., task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., severity: _Optional[int] = ..., message: _Optional[str] = ..., time: _Optional[float] = ...) -> None: ...

class WorkerHeartbeat(_message.Message):
    __slots__ = ("worker_id", "machine_type", "slots", "busy_slots")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    BUSY_SLOTS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    machine_type: _common_pb2.MachineType
    slots: int
    busy_slots: int
    def __init__(self, worker_id: _Optional[str] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ..., slots: _Optional[int] = ..., busy_slots: _Optional[int] = ...) -> None: ...
