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
        texts = [t for t in record["outputs"].get("texts", []) if t.strip()]
        if not found:
            print(f"  {record['image']:<24}   - no text found")
            continue
        shown = "; ".join(repr(t) for t in texts[:3]) + (" ..." if len(texts) > 3 else "")
        print(f"  {record['image']:<24} {len(found):3d} text regions: {shown}")
    annotated = sorted((folder / "images").rglob("*.jpg")) if (folder / "images").exists() else []
    if annotated:
        print(f"{len(annotated)} annotated images in {folder / 'images'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
