"""The issue's targets on the 2-core machine, each printed beside its figure as "ok" or "below"."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    what: str
    value: float | None
    """The figure; None when it could not be measured."""
    bound: float
    at_least: bool
    """True: the figure must be >= bound; False: it must be < bound."""
    unit: str = "x"
    """How figures print: "x" (a ratio), " s" or " images/s"."""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.bound if self.at_least else self.value < self.bound

    def _number(self, value: float) -> str:
        if self.unit == "x":
            return f"{value:.2f}x"
        if self.unit == " s":
            return f"{value:.2f} s"
        return f"{value:,.0f}{self.unit}"

    @property
    def verdict(self) -> str:
        return {True: "ok", False: "below", None: "not measured"}[self.met]

    def cell(self, against: str = "") -> str:
        """ ">= 0.90x: ok" (with `against` after the bound, e.g. "Ray")."""
        bound = (
            f"{'>=' if self.at_least else '<'} {self._number(self.bound)}{' ' + against if against else ''}"
        )
        return f"{bound}: {self.verdict}"

    def line(self) -> str:
        figure = "-" if self.value is None else self._number(self.value)
        return f"{self.what}: {figure} (target {self.cell()})"


def summary(targets: list[Target]) -> str:
    """One line: how many targets were met, and which were not."""
    missed = [t.what for t in targets if t.met is not True]
    met = len(targets) - len(missed)
    tail = f"; not met: {'; '.join(missed)}" if missed else ""
    return f"targets: {met} of {len(targets)} ok{tail}"
