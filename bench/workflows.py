"""The three workflows the pipeline bench runs, each with the model a user would register for it.

- `text`: examples/workflows/text-detection.json as shipped (the built-in `sluice/text-detector`,
  PP-OCRv4's DBNet, longer side scaled to 960, then the box drawing step).
- `light`: the same workflow and ONNX file, registered as `bench/text-detector-320` with a spec
  that letterboxes every image to 320x320 (batches of 8 in one forward pass): about a sixth of
  the pixels, so a light detector.
- `tiny`: one classification step over a near-free model (`bench/tiny_model.py`) on 64x64
  JPEGs: the orchestration ceiling.

Every way (bare loop, Ray, the jobs) runs the same definition against the same specs: in process
through a `MappingCatalog`, on the stack through `sluice models register --spec-file`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from bench.model import WORKFLOW_FILE
from bench.tiny_model import CLASS_NAMES, INPUT_SIZE, write_tiny_classifier
from sluice.models import MappingCatalog, ModelCatalog
from sluice.models.registry import TEXT_DETECTOR, get_model
from sluice.models.spec import ModelSpec
from sluice.models.spec_json import spec_to_json

LIGHT_MODEL_ID = "bench/text-detector-320"
LIGHT_INPUT = 320
TINY_MODEL_ID = "bench/tiny-classifier"


@dataclass(frozen=True)
class BenchModel:
    """A model the bench registers: its ONNX file and spec."""

    spec: ModelSpec

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    def register_args(self, spec_file: Path) -> list[str]:
        """`sluice models register` arguments; writes the spec's JSON to `spec_file`."""
        spec_file.write_text(spec_to_json(self.spec, indent=2))
        return [
            *("models", "register", "--model-id", self.model_id),
            *("--file", str(self.spec.path), "--spec-file", str(spec_file)),
        ]


@dataclass(frozen=True)
class BenchWorkflow:
    key: str
    title: str
    workflow_id: str
    definition: str
    """The workflow's JSON text (what `sluice workflows create --file` sends)."""
    model: BenchModel | None = None
    """The user model it names; None when it runs a built-in one."""

    def catalog(self) -> ModelCatalog | None:
        """What compiles it in process (None: the built-in catalog)."""
        return None if self.model is None else MappingCatalog({self.model.model_id: self.model.spec})

    def write(self, folder: Path) -> Path:
        """The definition as a file for `sluice workflows create --file`."""
        path = folder / f"{self.workflow_id}.json"
        path.write_text(self.definition)
        return path


def text_workflow() -> BenchWorkflow:
    spec = get_model(TEXT_DETECTOR)
    side = spec.max_side
    return BenchWorkflow(
        "text",
        f"text detector ({TEXT_DETECTOR}, longer side {side})",
        "bench-text-detection",
        WORKFLOW_FILE.read_text(),
    )


def light_workflow() -> BenchWorkflow:
    definition = json.loads(WORKFLOW_FILE.read_text())
    for step in definition["steps"]:
        if step.get("model_id") == TEXT_DETECTOR:
            step["model_id"] = LIGHT_MODEL_ID
    spec = dataclasses.replace(
        get_model(TEXT_DETECTOR),
        model_id=LIGHT_MODEL_ID,
        input_size=(LIGHT_INPUT, LIGHT_INPUT),
        resize_mode="letterbox",
        max_batch=8,
    )
    return BenchWorkflow(
        "light",
        f"light detector ({LIGHT_MODEL_ID}: the same ONNX at {LIGHT_INPUT}x{LIGHT_INPUT})",
        "bench-light-detection",
        json.dumps(definition, indent=2),
        BenchModel(spec),
    )


def tiny_workflow(folder: Path) -> BenchWorkflow:
    """The ceiling's workflow; writes its ONNX file into `folder`."""
    path = write_tiny_classifier(folder / "tiny-classifier.onnx")
    spec = ModelSpec(
        model_id=TINY_MODEL_ID,
        path=path,
        class_names=CLASS_NAMES,
        output_layout="yolov8-cls",
        task="classification",
        input_size=(INPUT_SIZE, INPUT_SIZE),
        resize_mode="resize",
        max_batch=64,
    )
    definition = {
        "version": "1.0",
        "inputs": [{"type": "WorkflowImage", "name": "image"}],
        "steps": [
            {
                "type": "sluice/classification_model@v1",
                "name": "classifier",
                "image": "$inputs.image",
                "model_id": TINY_MODEL_ID,
            }
        ],
        "outputs": [
            {"type": "JsonField", "name": "predictions", "selector": "$steps.classifier.predictions"}
        ],
    }
    return BenchWorkflow(
        "tiny",
        f"tiny model ({TINY_MODEL_ID}: 1x1 conv + pool, {INPUT_SIZE}x{INPUT_SIZE})",
        "bench-tiny",
        json.dumps(definition, indent=2),
        BenchModel(spec),
    )
