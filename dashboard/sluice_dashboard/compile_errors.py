"""Which part of a workflow a compiler refusal is about, so the page can show it at that step.

The compiler (and CreateWorkflow, which passes its message on) names what is at fault as
`step 'name': ...`, `step 'name' type ...` (unsupported blocks, several in one message),
`step name 'name' is used twice`, `steps form a cycle: 'a' -> 'b' -> 'a' (...)`,
`input 'name': ...` and `output 'name': ...`. Other mentions only point elsewhere
(`step 'x' has no output 'y'` is said of the step being read, not the one at fault; `one value
per child of step 'crop'` describes a value), so only the forms above count. Pure: no Streamlit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Workflow names: letters, digits, '_' or '-' (sluice.workflow.selectors), so repr() always
# quotes them with single quotes.
_NAME = r"[A-Za-z_][A-Za-z0-9_\-]*"
_STEP = re.compile(rf"\bstep (?:name )?'({_NAME})'(?=:| type '| property '| is used twice| is refused)")
_CYCLE = re.compile(rf"\bsteps form a cycle: ((?:'{_NAME}'(?: -> )?)+)")
_QUOTED = re.compile(rf"'({_NAME})'")
_INPUT = re.compile(rf"\binput '({_NAME})':")
_OUTPUT = re.compile(rf"\boutput '({_NAME})':")


@dataclass(frozen=True)
class Fault:
    """The steps, inputs and outputs a message blames, in the order it names them."""

    steps: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def placed(self) -> bool:
        """Whether the message names anything it can be shown next to."""
        return bool(self.steps or self.inputs or self.outputs)


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def steps_named(message: str) -> tuple[str, ...]:
    """The steps `message` says are at fault (empty when it names none)."""
    names: list[str] = []
    if cycle := _CYCLE.search(message):
        names.extend(_QUOTED.findall(cycle.group(1)))
    names.extend(_STEP.findall(message))
    return _unique(names)


def fault_of(message: str) -> Fault:
    """What `message` blames: its steps, and the workflow inputs and outputs it names."""
    return Fault(
        steps=steps_named(message),
        inputs=_unique(_INPUT.findall(message)),
        outputs=_unique(_OUTPUT.findall(message)),
    )
