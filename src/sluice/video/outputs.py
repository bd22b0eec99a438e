"""Names and fields of what a video job writes: shared by the worker and the exporter.

Inside a job's processing folder, a segment task writes

- `results/<task id>.jsonl`: one record per frame it owns, in frame order, and for a video that
  broke while decoding one video-level error record (`frame_index` null);
- `seams/<task id>.jsonl`: the records of its warm-up frames (owned by the previous segment),
  used only to join tracker ids across the seam;
- `segments/<video>.<output>.mp4/<segment:05d>.mp4`: the image output `output` of its frames as
  an H.264 part, frame k of the part being its k-th frame record.

The exporter writes `videos/<video>.<output>.mp4`, the parts joined, which every frame record of
the video names under `image_outputs`.
"""

from __future__ import annotations

VIDEO = "video"
FRAME_INDEX = "frame_index"
TIMESTAMP = "timestamp_s"
SEGMENT = "segment"
RECORD_KEYS = (VIDEO, FRAME_INDEX, TIMESTAMP)
"""The fields that name a frame record, before status and error (also the first CSV columns)."""

SEAMS_PREFIX = "seams/"
SEGMENTS_PREFIX = "segments/"
VIDEOS_PREFIX = "videos/"


def _clean(video_name: str) -> str:
    parts = [part for part in video_name.split("/") if part not in ("", ".", "..")]
    return "/".join(parts) or "_"


def seam_object_name(task_id: str) -> str:
    return f"{SEAMS_PREFIX}{task_id}.jsonl"


def video_output_name(video_name: str, output: str) -> str:
    """The annotated video of an image output, as exported (the input's extension stays in it)."""
    return f"{VIDEOS_PREFIX}{_clean(video_name)}.{output}.mp4"


def segment_parts_folder(video_name: str, output: str) -> str:
    return f"{SEGMENTS_PREFIX}{_clean(video_name)}.{output}.mp4/"


def segment_part_name(video_name: str, output: str, segment_index: int) -> str:
    return f"{segment_parts_folder(video_name, output)}{segment_index:05d}.mp4"
