from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

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
