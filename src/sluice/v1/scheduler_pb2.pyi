import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sluice.v1 import common_pb2 as _common_pb2
from sluice.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_COMPLETED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_ABORTED: _ClassVar[JobState]
    JOB_STATE_COMPLETED_WITH_ERRORS: _ClassVar[JobState]
    JOB_STATE_STOPPED: _ClassVar[JobState]

class StageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_STATE_UNSPECIFIED: _ClassVar[StageState]
    STAGE_STATE_PENDING: _ClassVar[StageState]
    STAGE_STATE_RUNNING: _ClassVar[StageState]
    STAGE_STATE_COMPLETED: _ClassVar[StageState]
    STAGE_STATE_FAILED: _ClassVar[StageState]
    STAGE_STATE_ABORTED: _ClassVar[StageState]
    STAGE_STATE_STOPPED: _ClassVar[StageState]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_WAITING: _ClassVar[TaskState]
    TASK_STATE_QUEUED: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_DONE: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_INTERRUPTED: _ClassVar[TaskState]

class LogSeverity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_SEVERITY_UNSPECIFIED: _ClassVar[LogSeverity]
    LOG_SEVERITY_INFO: _ClassVar[LogSeverity]
    LOG_SEVERITY_WARNING: _ClassVar[LogSeverity]
    LOG_SEVERITY_ERROR: _ClassVar[LogSeverity]

class UsageGrouping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_GROUPING_UNSPECIFIED: _ClassVar[UsageGrouping]
    USAGE_GROUPING_JOB: _ClassVar[UsageGrouping]
    USAGE_GROUPING_DAY: _ClassVar[UsageGrouping]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_COMPLETED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_ABORTED: JobState
JOB_STATE_COMPLETED_WITH_ERRORS: JobState
JOB_STATE_STOPPED: JobState
STAGE_STATE_UNSPECIFIED: StageState
STAGE_STATE_PENDING: StageState
STAGE_STATE_RUNNING: StageState
STAGE_STATE_COMPLETED: StageState
STAGE_STATE_FAILED: StageState
STAGE_STATE_ABORTED: StageState
STAGE_STATE_STOPPED: StageState
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_WAITING: TaskState
TASK_STATE_QUEUED: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_DONE: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_INTERRUPTED: TaskState
LOG_SEVERITY_UNSPECIFIED: LogSeverity
LOG_SEVERITY_INFO: LogSeverity
LOG_SEVERITY_WARNING: LogSeverity
LOG_SEVERITY_ERROR: LogSeverity
USAGE_GROUPING_UNSPECIFIED: UsageGrouping
USAGE_GROUPING_JOB: UsageGrouping
USAGE_GROUPING_DAY: UsageGrouping

class Workflow(_message.Message):
    __slots__ = ("workflow_id", "version", "definition_json", "created_at")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    version: int
    definition_json: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, workflow_id: _Optional[str] = ..., version: _Optional[int] = ..., definition_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "definition_json")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    definition_json: str
    def __init__(self, workflow_id: _Optional[str] = ..., definition_json: _Optional[str] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[Workflow]
    def __init__(self, workflows: _Optional[_Iterable[_Union[Workflow, _Mapping]]] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "version")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    version: int
    def __init__(self, workflow_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("job_id", "workflow_id", "batch_id", "machine_type", "workers_per_machine", "save_image_outputs", "aggregation_format", "max_image_failure_rate", "workflow_params_json", "image_input_name", "image_outputs_to_save", "max_runtime_seconds", "max_parallel_tasks", "priority", "max_video_fps", "video_segment_seconds", "notifications_url")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_PER_MACHINE_FIELD_NUMBER: _ClassVar[int]
    SAVE_IMAGE_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_INPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_OUTPUTS_TO_SAVE_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAX_VIDEO_FPS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SEGMENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_URL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    workflow_id: str
    batch_id: str
    machine_type: _common_pb2.MachineType
    workers_per_machine: int
    save_image_outputs: bool
    aggregation_format: _common_pb2.AggregationFormat
    max_image_failure_rate: float
    workflow_params_json: str
    image_input_name: str
    image_outputs_to_save: _containers.RepeatedScalarFieldContainer[str]
    max_runtime_seconds: float
    max_parallel_tasks: int
    priority: int
    max_video_fps: float
    video_segment_seconds: float
    notifications_url: str
    def __init__(self, job_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ..., workers_per_machine: _Optional[int] = ..., save_image_outputs: _Optional[bool] = ..., aggregation_format: _Optional[_Union[_common_pb2.AggregationFormat, str]] = ..., max_image_failure_rate: _Optional[float] = ..., workflow_params_json: _Optional[str] = ..., image_input_name: _Optional[str] = ..., image_outputs_to_save: _Optional[_Iterable[str]] = ..., max_runtime_seconds: _Optional[float] = ..., max_parallel_tasks: _Optional[int] = ..., priority: _Optional[int] = ..., max_video_fps: _Optional[float] = ..., video_segment_seconds: _Optional[float] = ..., notifications_url: _Optional[str] = ...) -> None: ...

class TaskCounts(_message.Message):
    __slots__ = ("waiting", "queued", "running", "done", "failed", "interrupted")
    WAITING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    waiting: int
    queued: int
    running: int
    done: int
    failed: int
    interrupted: int
    def __init__(self, waiting: _Optional[int] = ..., queued: _Optional[int] = ..., running: _Optional[int] = ..., done: _Optional[int] = ..., failed: _Optional[int] = ..., interrupted: _Optional[int] = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("task_id", "stage", "state", "items_done", "items_total", "items_failed", "worker_id", "deliveries", "machine_seconds", "error")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_DONE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FAILED_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    MACHINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    stage: str
    state: TaskState
    items_done: int
    items_total: int
    items_failed: int
    worker_id: str
    deliveries: int
    machine_seconds: float
    error: str
    def __init__(self, task_id: _Optional[str] = ..., stage: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., items_done: _Optional[int] = ..., items_total: _Optional[int] = ..., items_failed: _Optional[int] = ..., worker_id: _Optional[str] = ..., deliveries: _Optional[int] = ..., machine_seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class Stage(_message.Message):
    __slots__ = ("name", "state", "tasks_done", "tasks_total", "items_done", "items_total", "items_failed", "output_batch_id", "machine_type", "task_counts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TASKS_DONE_FIELD_NUMBER: _ClassVar[int]
    TASKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ITEMS_DONE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FAILED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_COUNTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: StageState
    tasks_done: int
    tasks_total: int
    items_done: int
    items_total: int
    items_failed: int
    output_batch_id: str
    machine_type: _common_pb2.MachineType
    task_counts: TaskCounts
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[StageState, str]] = ..., tasks_done: _Optional[int] = ..., tasks_total: _Optional[int] = ..., items_done: _Optional[int] = ..., items_total: _Optional[int] = ..., items_failed: _Optional[int] = ..., output_batch_id: _Optional[str] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ..., task_counts: _Optional[_Union[TaskCounts, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "workflow_id", "workflow_version", "batch_id", "state", "current_stage", "machine_type", "workers_per_machine", "save_image_outputs", "aggregation_format", "stages", "notice", "error", "created_at", "updated_at", "max_image_failure_rate", "workflow_params_json", "image_outputs_to_save", "attempt", "max_runtime_seconds", "machine_seconds", "max_parallel_tasks", "priority", "tasks", "started_at", "ended_at", "input_type", "max_video_fps", "video_segment_seconds", "notifications_url", "usage")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STAGE_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_PER_MACHINE_FIELD_NUMBER: _ClassVar[int]
    SAVE_IMAGE_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    AGGREGATION_FORMAT_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    NOTICE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    IMAGE_OUTPUTS_TO_SAVE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MACHINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    INPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    MAX_VIDEO_FPS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_SEGMENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_URL_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    workflow_id: str
    workflow_version: int
    batch_id: str
    state: JobState
    current_stage: str
    machine_type: _common_pb2.MachineType
    workers_per_machine: int
    save_image_outputs: bool
    aggregation_format: _common_pb2.AggregationFormat
    stages: _containers.RepeatedCompositeFieldContainer[Stage]
    notice: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    max_image_failure_rate: float
    workflow_params_json: str
    image_outputs_to_save: _containers.RepeatedScalarFieldContainer[str]
    attempt: int
    max_runtime_seconds: float
    machine_seconds: float
    max_parallel_tasks: int
    priority: int
    tasks: _containers.RepeatedCompositeFieldContainer[TaskInfo]
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    input_type: _common_pb2.BatchType
    max_video_fps: float
    video_segment_seconds: float
    notifications_url: str
    usage: Usage
    def __init__(self, job_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., workflow_version: _Optional[int] = ..., batch_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., current_stage: _Optional[str] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ..., workers_per_machine: _Optional[int] = ..., save_image_outputs: _Optional[bool] = ..., aggregation_format: _Optional[_Union[_common_pb2.AggregationFormat, str]] = ..., stages: _Optional[_Iterable[_Union[Stage, _Mapping]]] = ..., notice: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_image_failure_rate: _Optional[float] = ..., workflow_params_json: _Optional[str] = ..., image_outputs_to_save: _Optional[_Iterable[str]] = ..., attempt: _Optional[int] = ..., max_runtime_seconds: _Optional[float] = ..., machine_seconds: _Optional[float] = ..., max_parallel_tasks: _Optional[int] = ..., priority: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[TaskInfo, _Mapping]]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., input_type: _Optional[_Union[_common_pb2.BatchType, str]] = ..., max_video_fps: _Optional[float] = ..., video_segment_seconds: _Optional[float] = ..., notifications_url: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("cpu_seconds", "gpu_seconds", "credits")
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    GPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    cpu_seconds: float
    gpu_seconds: float
    credits: float
    def __init__(self, cpu_seconds: _Optional[float] = ..., gpu_seconds: _Optional[float] = ..., credits: _Optional[float] = ...) -> None: ...

class JobEstimate(_message.Message):
    __slots__ = ("sample_items", "items_total", "sample_machine_seconds", "machine_seconds", "wall_seconds", "credits", "machine_type", "slots")
    SAMPLE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_MACHINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MACHINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    sample_items: int
    items_total: int
    sample_machine_seconds: float
    machine_seconds: float
    wall_seconds: float
    credits: float
    machine_type: _common_pb2.MachineType
    slots: int
    def __init__(self, sample_items: _Optional[int] = ..., items_total: _Optional[int] = ..., sample_machine_seconds: _Optional[float] = ..., machine_seconds: _Optional[float] = ..., wall_seconds: _Optional[float] = ..., credits: _Optional[float] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ..., slots: _Optional[int] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("since", "until", "by")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    by: UsageGrouping
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., by: _Optional[_Union[UsageGrouping, str]] = ...) -> None: ...

class UsageRow(_message.Message):
    __slots__ = ("key", "usage", "jobs")
    KEY_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    key: str
    usage: Usage
    jobs: int
    def __init__(self, key: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., jobs: _Optional[int] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("rows", "total", "workspace")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[UsageRow]
    total: Usage
    workspace: str
    def __init__(self, rows: _Optional[_Iterable[_Union[UsageRow, _Mapping]]] = ..., total: _Optional[_Union[Usage, _Mapping]] = ..., workspace: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("job_id", "follow", "since")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    follow: bool
    since: _timestamp_pb2.Timestamp
    def __init__(self, job_id: _Optional[str] = ..., follow: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "states")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[JobState]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class AbortJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class RestartJobRequest(_message.Message):
    __slots__ = ("job_id", "machine_type", "workers_per_machine", "max_runtime_seconds", "max_parallel_tasks", "max_image_failure_rate")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_PER_MACHINE_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_TASKS_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    machine_type: _common_pb2.MachineType
    workers_per_machine: int
    max_runtime_seconds: float
    max_parallel_tasks: int
    max_image_failure_rate: float
    def __init__(self, job_id: _Optional[str] = ..., machine_type: _Optional[_Union[_common_pb2.MachineType, str]] = ..., workers_per_machine: _Optional[int] = ..., max_runtime_seconds: _Optional[float] = ..., max_parallel_tasks: _Optional[int] = ..., max_image_failure_rate: _Optional[float] = ...) -> None: ...

class LogRecord(_message.Message):
    __slots__ = ("time", "severity", "source", "task_id", "message")
    TIME_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    severity: LogSeverity
    source: str
    task_id: str
    message: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., severity: _Optional[_Union[LogSeverity, str]] = ..., source: _Optional[str] = ..., task_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class FetchLogsRequest(_message.Message):
    __slots__ = ("job_id", "min_severity", "page_size", "page_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    min_severity: LogSeverity
    page_size: int
    page_token: str
    def __init__(self, job_id: _Optional[str] = ..., min_severity: _Optional[_Union[LogSeverity, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class FetchLogsResponse(_message.Message):
    __slots__ = ("records", "next_page_token")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[LogRecord]
    next_page_token: str
    def __init__(self, records: _Optional[_Iterable[_Union[LogRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
