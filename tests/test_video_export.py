"""The export of a video job: records joined across segments, in frame order, parts joined.

Result, seam and part objects are written the way segment tasks write them; `export_job` then
runs as the exporter runs it, against a local object store.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from sluice import storage
from sluice.v1 import common_pb2, tasks_pb2
from sluice.video import outputs
from sluice.video.encode import Mp4Writer, mp4_facts
from sluice_exporter.export import export_job


def frame(segment: int, index: int, tracker_id: int | None, *, status: str = "ok") -> dict[str, Any]:
    predictions = []
    if tracker_id is not None:
        predictions.append(
            {
                "x": 10.0 + index,
                "y": 20.0,
                "width": 8.0,
                "height": 8.0,
                "confidence": 0.9,
                "class": "red",
                "class_id": 0,
                "detection_id": f"d{index}",
                "tracker_id": tracker_id,
            }
        )
    return {
        "video": "cam/a b.mp4",
        "frame_index": index,
        "timestamp_s": index / 5,
        "segment": segment,
        "task_id": f"t{segment}",
        "status": status,
        "error": None if status == "ok" else "workflow failed: boom",
        "outputs": {"tracked": {"image": {"width": 64, "height": 48}, "predictions": predictions}},
        "image_outputs": {"annotated": outputs.video_output_name("cam/a b.mp4", "annotated")},
    }


def jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def part(path: Path, frames: int, value: int) -> Path:
    with Mp4Writer(str(path), 64, 48, 5.0) as writer:
        for _ in range(frames):
            writer.write(np.full((48, 64, 3), value, np.uint8))
    return path


def test_video_export_joins_ids_orders_frames_and_joins_parts(tmp_path: Path) -> None:
    processing = f"file://{tmp_path / 'processing'}"
    export = f"file://{tmp_path / 'export'}"
    # Segment 1's tracker calls the object 7; the warm-up frames 6..9 show it is segment 0's 1.
    # Its frame 12 was recorded twice (a failed run, then an ok one), and its object 8 is new.
    seg0 = [frame(0, i, 1) for i in range(10)]
    seg1 = [frame(1, i, 7 if i < 15 else 8) for i in range(10, 20)] + [frame(1, 12, None, status="error")]
    storage.write_bytes(processing, "results/t1.jsonl", jsonl(seg1[::-1]))
    storage.write_bytes(processing, "results/t0.jsonl", jsonl(seg0))
    storage.write_bytes(
        processing, outputs.seam_object_name("t1"), jsonl([frame(1, i, 7) for i in range(6, 10)])
    )
    broken = {
        **frame(1, 0, None, status="error"),
        "frame_index": None,
        "timestamp_s": None,
        "error": "decoding stopped after frame 19: 3 of 13 frames could not be decoded",
    }
    storage.write_bytes(processing, "results/t2.jsonl", jsonl([broken]))
    for index, value in ((0, 40), (1, 200)):
        name = outputs.segment_part_name("cam/a b.mp4", "annotated", index)
        storage.write_file(processing, name, part(tmp_path / f"p{index}.mp4", 10, value))

    summary = export_job(
        processing,
        export,
        common_pb2.AGGREGATION_FORMAT_CSV,
        1 << 30,
        video_tasks=[
            tasks_pb2.FailedTask(
                task_id="t9", input_names=["other.mp4"], error="no result after 5 deliveries"
            )
        ],
    )

    unpacked = tmp_path / "unpacked"
    for archive in summary.archives:
        with tarfile.open(tmp_path / "export" / archive) as tar:
            tar.extractall(unpacked, filter="data")
    rows = list(csv.reader(io.StringIO((unpacked / "results.csv").read_text())))
    assert rows[0][:5] == ["video", "frame_index", "timestamp_s", "status", "error"]
    body = rows[1:]
    video_rows = [r for r in body if r[0] == "cam/a b.mp4"]
    assert [r[1] for r in video_rows] == [str(i) for i in range(20)] + [""], "frame order, error last"
    assert all(r[3] == "ok" for r in video_rows[:20]), "the ok record of frame 12 wins"
    assert "could not be decoded" in video_rows[-1][4]
    assert [r[0] for r in body][-1] == "other.mp4" and "task failed" in body[-1][4]
    tracked = [json.loads(r[rows[0].index("tracked")]) for r in video_rows[:20]]
    ids = [p["tracker_id"] for t in tracked for p in t["predictions"]]
    assert ids[:15] == [1] * 15, "segment 1's object 7 is segment 0's 1"
    assert set(ids[15:]) == {2}, "a new object gets an id no earlier segment used"
    facts = mp4_facts(str(unpacked / outputs.video_output_name("cam/a b.mp4", "annotated")))
    assert facts.frames == 20 and facts.codec == "h264" and facts.moov_before_mdat
