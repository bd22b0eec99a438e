"""Print a short summary of an exported job folder (results.jsonl and annotated images)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(folder: Path) -> None:
    records = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    print(f"\n{len(records)} images processed; results in {folder / 'results.jsonl'}")
    for record in records:
        if record["status"] != "ok":
            print(f"  {record['image']:<24} error: {record['error']}")
            continue
        found = record["outputs"]["predictions"]["predictions"]
        best = max((p["confidence"] for p in found), default=0.0)
        note = f"{len(found):3d} text regions (best confidence {best:.2f})" if found else "  - nothing found"
        print(f"  {record['image']:<24} {note}")
    annotated = sorted((folder / "images").rglob("*.jpg")) if (folder / "images").exists() else []
    if annotated:
        print(f"{len(annotated)} annotated images in {folder / 'images'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
