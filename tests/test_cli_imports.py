"""What the CLI imports before a verb runs, a structural guard like tests/test_contracts.py: building
the parser (what `sluice --help` and every verb do first) imports no model, image or dashboard
code, so the command line starts fast; the verbs import those when they run."""

from __future__ import annotations

import json
import subprocess
import sys

# What neither building the parser nor a list or show verb may import (what `sluice` needs only
# to run workflows, draw progress bars, serve the dashboard or run the stack).
HEAVY = (
    "supervision",
    "scipy",
    "cv2",
    "onnxruntime",
    "av",
    "numpy",
    "sluice.workflow",
    "streamlit",
    "tqdm",
    "asyncpg",
    "nats",
    "bcrypt",
    "sluice.stack.supervisor",
)


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def heavy_modules(modules: set[str]) -> set[str]:
    """The HEAVY modules (or their submodules) among `modules`."""
    return {m for m in modules if any(m == h or m.startswith(f"{h}.") for h in HEAVY)}


def test_building_the_parser_imports_nothingheavy_modules() -> None:
    modules = _modules_after("from sluice.cli.main import build_parser\nbuild_parser()")
    assert "sluice.cli.job_commands" in modules  # the whole parser was built
    assert not heavy_modules(modules)
    assert "grpc" not in modules  # `sluice --help` needs no gRPC runtime (0.1 s of import)


def test_the_model_id_rule_does_not_import_the_models() -> None:
    """The CLI's `models` verbs check ids with sluice.models.model_ids; the package is lazy."""
    modules = _modules_after("import sluice.models.model_ids")
    assert not heavy_modules(modules)
    assert "sluice.models.decoders" not in modules


def test_the_models_package_still_exports_every_name() -> None:
    import sluice.models
    from sluice.models import preprocess
    from sluice.models.preprocess import fit  # the submodule imported: the name stays the function

    assert callable(preprocess) and sluice.models.preprocess is preprocess and sluice.models.fit is fit
    assert all(getattr(sluice.models, name) is not None for name in sluice.models.__all__)


def test_the_export_verb_offers_the_repository_kinds() -> None:
    from sluice.cli.triton_commands import BACKENDS
    from sluice.models.triton_repository import KINDS

    assert BACKENDS == KINDS
