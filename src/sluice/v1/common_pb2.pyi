from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class BatchType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_TYPE_UNSPECIFIED: _ClassVar[BatchType]
    BATCH_TYPE_IMAGES: _ClassVar[BatchType]
    BATCH_TYPE_VIDEOS: _ClassVar[BatchType]
    BATCH_TYPE_PROCESSING_RESULTS: _ClassVar[BatchType]
    BATCH_TYPE_EXPORT: _ClassVar[BatchType]

class MachineType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MACHINE_TYPE_UNSPECIFIED: _ClassVar[MachineType]
    MACHINE_TYPE_CPU: _ClassVar[MachineType]
    MACHINE_TYPE_GPU: _ClassVar[MachineType]

class AggregationFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGGREGATION_FORMAT_UNSPECIFIED: _ClassVar[AggregationFormat]
    AGGREGATION_FORMAT_JSONL: _ClassVar[AggregationFormat]
    AGGREGATION_FORMAT_CSV: _ClassVar[AggregationFormat]
BATCH_TYPE_UNSPECIFIED: BatchType
BATCH_TYPE_IMAGES: BatchType
BATCH_TYPE_VIDEOS: BatchType
BATCH_TYPE_PROCESSING_RESULTS: BatchType
BATCH_TYPE_EXPORT: BatchType
MACHINE_TYPE_UNSPECIFIED: MachineType
MACHINE_TYPE_CPU: MachineType
MACHINE_TYPE_GPU: MachineType
AGGREGATION_FORMAT_UNSPECIFIED: AggregationFormat
AGGREGATION_FORMAT_JSONL: AggregationFormat
AGGREGATION_FORMAT_CSV: AggregationFormat

class VideoInfo(_message.Message):
    __slots__ = ("duration_s", "frame_count", "width", "height", "fps", "codec", "rotation", "coded_width", "coded_height", "sample_aspect_ratio", "variable_frame_rate", "start_time_s", "frame_index_name")
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    CODED_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CODED_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ASPECT_RATIO_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_S_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_NAME_FIELD_NUMBER: _ClassVar[int]
    duration_s: float
    frame_count: int
    width: int
    height: int
    fps: float
    codec: str
    rotation: int
    coded_width: int
    coded_height: int
    sample_aspect_ratio: str
    variable_frame_rate: bool
    start_time_s: float
    frame_index_name: str
    def __init__(self, duration_s: _Optional[float] = ..., frame_count: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., codec: _Optional[str] = ..., rotation: _Optional[int] = ..., coded_width: _Optional[int] = ..., coded_height: _Optional[int] = ..., sample_aspect_ratio: _Optional[str] = ..., variable_frame_rate: _Optional[bool] = ..., start_time_s: _Optional[float] = ..., frame_index_name: _Optional[str] = ...) -> None: ...
