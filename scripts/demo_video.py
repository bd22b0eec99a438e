"""The video part of the demo: make a clip and its detector; then say what the job found.

`prepare FOLDER` writes FOLDER/clips/shapes.mp4 (coloured squares crossing the frame, 20 s at
25 fps) and FOLDER/shapes.onnx (a detector built for those squares); `summary EXPORT` reads a
video job's export and prints its frames, the objects the tracker followed, and the annotated
video's facts.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from sluice.video.encode import mp4_facts
from sluice.video.synthetic import write_moving_shapes, write_shapes_detector


def prepare(folder: Path) -> None:
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    clip = folder / "clips" / "shapes.mp4"
    plan = write_moving_shapes(clip, width=640, height=360, fps=25.0, duration_s=20.0)
    write_shapes_detector(folder / "shapes.onnx")
    print(f"wrote {folder / 'clips' / 'shapes.mp4'}: {len(plan)} squares cross it in 20 s")


def summary(export: Path) -> None:
    records = [json.loads(line) for line in (export / "results.jsonl").read_text().splitlines() if line]
    frames = [r for r in records if r["frame_index"] is not None]
    spans: dict[int, list[float]] = defaultdict(list)
    classes: dict[int, str] = {}
    for record in frames:
        for prediction in record["outputs"]["tracked"]["predictions"]:
            spans[prediction["tracker_id"]].append(record["timestamp_s"])
            classes[prediction["tracker_id"]] = prediction["class"]
    print(f"{len(frames)} frames processed, {len(spans)} objects tracked:")
    for tracker_id in sorted(spans):
        seen = spans[tracker_id]
        print(f"  id {tracker_id:>3}  {classes[tracker_id]:<6} {min(seen):6.1f} s to {max(seen):5.1f} s")
    videos = sorted({name for r in frames for name in r["image_outputs"].values()})
    for name in videos:
        facts = mp4_facts(str(export / name))
        layout = "moov first: plays while downloading" if facts.moov_before_mdat else "moov at the end"
        print(
            f"annotated video {name}: {facts.codec} {facts.width}x{facts.height}, "
            f"{facts.frames} frames at {facts.fps:g} fps, {layout}"
        )


def main() -> int:
    verb, folder = sys.argv[1], Path(sys.argv[2])
    prepare(folder) if verb == "prepare" else summary(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
