import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_JOB_CREATED: _ClassVar[EventType]
    EVENT_TYPE_STAGE_STARTED: _ClassVar[EventType]
    EVENT_TYPE_PROGRESS: _ClassVar[EventType]
    EVENT_TYPE_JOB_COMPLETED: _ClassVar[EventType]
    EVENT_TYPE_JOB_FAILED: _ClassVar[EventType]
    EVENT_TYPE_JOB_ABORTED: _ClassVar[EventType]
    EVENT_TYPE_BATCH_INGESTED: _ClassVar[EventType]
    EVENT_TYPE_BATCH_EXPIRED: _ClassVar[EventType]
    EVENT_TYPE_JOB_STOPPED: _ClassVar[EventType]
    EVENT_TYPE_JOB_RESTARTED: _ClassVar[EventType]
    EVENT_TYPE_JOB_COMPLETED_WITH_ERRORS: _ClassVar[EventType]
    EVENT_TYPE_BATCH_CREATED: _ClassVar[EventType]
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_JOB_CREATED: EventType
EVENT_TYPE_STAGE_STARTED: EventType
EVENT_TYPE_PROGRESS: EventType
EVENT_TYPE_JOB_COMPLETED: EventType
EVENT_TYPE_JOB_FAILED: EventType
EVENT_TYPE_JOB_ABORTED: EventType
EVENT_TYPE_BATCH_INGESTED: EventType
EVENT_TYPE_BATCH_EXPIRED: EventType
EVENT_TYPE_JOB_STOPPED: EventType
EVENT_TYPE_JOB_RESTARTED: EventType
EVENT_TYPE_JOB_COMPLETED_WITH_ERRORS: EventType
EVENT_TYPE_BATCH_CREATED: EventType

class Event(_message.Message):
    __slots__ = ("event_id", "type", "workspace", "job_id", "batch_id", "stage", "time", "message", "items_done", "items_total", "state", "attempt", "machine_seconds")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_DONE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MACHINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: EventType
    workspace: str
    job_id: str
    batch_id: str
    stage: str
    time: _timestamp_pb2.Timestamp
    message: str
    items_done: int
    items_total: int
    state: str
    attempt: int
    machine_seconds: float
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., workspace: _Optional[str] = ..., job_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., stage: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ..., items_done: _Optional[int] = ..., items_total: _Optional[int] = ..., state: _Optional[str] = ..., attempt: _Optional[int] = ..., machine_seconds: _Optional[float] = ...) -> None: ...
