import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sluice.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Batch(_message.Message):
    __slots__ = ("batch_id", "type", "object_count", "total_bytes", "part_count", "created_at", "expires_at", "source_job_id", "parts", "expired_at", "notifications_url", "held_until")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    PART_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_AT_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_URL_FIELD_NUMBER: _ClassVar[int]
    HELD_UNTIL_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    type: _common_pb2.BatchType
    object_count: int
    total_bytes: int
    part_count: int
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    source_job_id: str
    parts: _containers.RepeatedCompositeFieldContainer[BatchPart]
    expired_at: _timestamp_pb2.Timestamp
    notifications_url: str
    held_until: _timestamp_pb2.Timestamp
    def __init__(self, batch_id: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.BatchType, str]] = ..., object_count: _Optional[int] = ..., total_bytes: _Optional[int] = ..., part_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_job_id: _Optional[str] = ..., parts: _Optional[_Iterable[_Union[BatchPart, _Mapping]]] = ..., expired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., notifications_url: _Optional[str] = ..., held_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BatchPart(_message.Message):
    __slots__ = ("index", "object_count", "total_bytes")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    index: int
    object_count: int
    total_bytes: int
    def __init__(self, index: _Optional[int] = ..., object_count: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class CreateBatchRequest(_message.Message):
    __slots__ = ("batch_id", "type", "notifications_url", "ttl_seconds")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_URL_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    type: _common_pb2.BatchType
    notifications_url: str
    ttl_seconds: float
    def __init__(self, batch_id: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.BatchType, str]] = ..., notifications_url: _Optional[str] = ..., ttl_seconds: _Optional[float] = ...) -> None: ...

class HoldBatchRequest(_message.Message):
    __slots__ = ("batch_id", "job_id", "hold_seconds")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    HOLD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    job_id: str
    hold_seconds: float
    def __init__(self, batch_id: _Optional[str] = ..., job_id: _Optional[str] = ..., hold_seconds: _Optional[float] = ...) -> None: ...

class UploadChunk(_message.Message):
    __slots__ = ("batch_id", "file_name", "data", "last")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    file_name: str
    data: bytes
    last: bool
    def __init__(self, batch_id: _Optional[str] = ..., file_name: _Optional[str] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class UploadSummary(_message.Message):
    __slots__ = ("files_stored", "bytes_stored", "rejected")
    FILES_STORED_FIELD_NUMBER: _ClassVar[int]
    BYTES_STORED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    files_stored: int
    bytes_stored: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedFile]
    def __init__(self, files_stored: _Optional[int] = ..., bytes_stored: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedFile, _Mapping]]] = ...) -> None: ...

class RejectedFile(_message.Message):
    __slots__ = ("file_name", "reason")
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    file_name: str
    reason: str
    def __init__(self, file_name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListBatchesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBatchesResponse(_message.Message):
    __slots__ = ("batches", "next_page_token")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[Batch]
    next_page_token: str
    def __init__(self, batches: _Optional[_Iterable[_Union[Batch, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetBatchRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class BatchObject(_message.Message):
    __slots__ = ("name", "size_bytes", "part_index", "content_type", "video")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PART_INDEX_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    name: str
    size_bytes: int
    part_index: int
    content_type: str
    video: _common_pb2.VideoInfo
    def __init__(self, name: _Optional[str] = ..., size_bytes: _Optional[int] = ..., part_index: _Optional[int] = ..., content_type: _Optional[str] = ..., video: _Optional[_Union[_common_pb2.VideoInfo, _Mapping]] = ...) -> None: ...

class ListBatchContentRequest(_message.Message):
    __slots__ = ("batch_id", "page_size", "page_token", "part_index", "all_parts", "name_prefix")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PART_INDEX_FIELD_NUMBER: _ClassVar[int]
    ALL_PARTS_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    page_size: int
    page_token: str
    part_index: int
    all_parts: bool
    name_prefix: str
    def __init__(self, batch_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., part_index: _Optional[int] = ..., all_parts: _Optional[bool] = ..., name_prefix: _Optional[str] = ...) -> None: ...

class ListBatchContentResponse(_message.Message):
    __slots__ = ("objects", "next_page_token")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[BatchObject]
    next_page_token: str
    def __init__(self, objects: _Optional[_Iterable[_Union[BatchObject, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DownloadObjectsRequest(_message.Message):
    __slots__ = ("batch_id", "names")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, batch_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class DownloadChunk(_message.Message):
    __slots__ = ("name", "data", "last", "size_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: bytes
    last: bool
    size_bytes: int
    def __init__(self, name: _Optional[str] = ..., data: _Optional[bytes] = ..., last: _Optional[bool] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class RegisterOutputBatchRequest(_message.Message):
    __slots__ = ("batch_id", "type", "source_job_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    type: _common_pb2.BatchType
    source_job_id: str
    def __init__(self, batch_id: _Optional[str] = ..., type: _Optional[_Union[_common_pb2.BatchType, str]] = ..., source_job_id: _Optional[str] = ...) -> None: ...

class BatchLocation(_message.Message):
    __slots__ = ("batch_id", "url")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    url: str
    def __init__(self, batch_id: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class GetThumbnailsRequest(_message.Message):
    __slots__ = ("batch_id", "names", "max_side")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    names: _containers.RepeatedScalarFieldContainer[str]
    max_side: int
    def __init__(self, batch_id: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., max_side: _Optional[int] = ...) -> None: ...

class Thumbnail(_message.Message):
    __slots__ = ("name", "jpeg", "width", "height", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    jpeg: bytes
    width: int
    height: int
    error: str
    def __init__(self, name: _Optional[str] = ..., jpeg: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class GetThumbnailsResponse(_message.Message):
    __slots__ = ("thumbnails",)
    THUMBNAILS_FIELD_NUMBER: _ClassVar[int]
    thumbnails: _containers.RepeatedCompositeFieldContainer[Thumbnail]
    def __init__(self, thumbnails: _Optional[_Iterable[_Union[Thumbnail, _Mapping]]] = ...) -> None: ...
