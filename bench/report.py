"""The printed tables: one row per way, with images/s, the ratio to the bare loop and a target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    way: str
    images: int
    seconds: float | None
    """None when the way did not run (its note says why)."""
    note: str = ""
    target: str = ""
    """The target this row is held to and whether it met it (`targets.Target.cell`)."""

    @property
    def rate(self) -> float | None:
        return self.images / self.seconds if self.seconds else None


def fmt(value: float | None, spec: str) -> str:
    """`value` formatted, or "-" when there is none."""
    return "-" if value is None else format(value, spec)


def aligned(cells: Sequence[Sequence[str] | None], right: set[int]) -> str:
    """Rows of text cells as aligned columns (indices in `right` flush right), a rule under the
    first row (the header); a None row is a blank line."""
    filled = [c for c in cells if c is not None]
    widths = [max(len(line[i]) for line in filled) for i in range(len(filled[0]))]
    lines = []
    for index, line in enumerate(cells):
        if line is None:
            lines.append("")
            continue
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio(rate: float | None, base: float | None) -> float | None:
    return rate / base if rate is not None and base else None


def table(rows: Sequence[Row], bare_rate: float | None) -> str:
    """Aligned text: way, images, seconds, images/s, ratio to bare, target, note."""
    header = ("way", "images", "seconds", "images/s", "vs bare", "target", "note")
    cells: list[Sequence[str]] = [header]
    for row in rows:
        versus = ratio(row.rate, bare_rate)
        cells.append(
            (
                row.way,
                str(row.images),
                fmt(row.seconds, ".2f"),
                fmt(row.rate, ".2f"),
                "-" if versus is None else f"{versus:.2f}x",
                row.target or "-",
                row.note,
            )
        )
    return aligned(cells, {1, 2, 3, 4})
