"""What the CLI imports before a verb runs, a structural guard like tests/test_contracts.py: building
the parser (what `sluice --help` and every verb do first) imports no model, image or dashboard
code, so the command line starts fast; the verbs import those when they run."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

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


COMMAND_MODULES = (
    "sluice.cli.stack",
    "sluice.cli.staging_commands",
    "sluice.cli.workflow_commands",
    "sluice.cli.job_commands",
    "sluice.cli.model_commands",
    "sluice.cli.triton_commands",
    "sluice.cli.usage_commands",
    "sluice.cli.admin_commands",
    "sluice.cli.event_commands",
)


def test_sluice_help_is_built_from_the_command_table_alone() -> None:
    code = "from sluice.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    modules = _modules_after(code)
    assert not {m for m in modules if m in COMMAND_MODULES or m.startswith("google.protobuf")}
    assert not heavy_modules(modules) and "grpc" not in modules


def test_a_command_imports_only_its_own_module() -> None:
    code = "from sluice.cli.main import parse\nparse(['batch-processing', 'list-jobs'])"
    modules = _modules_after(code)
    assert "sluice.cli.job_commands" in modules
    others = {
        "sluice.cli.stack",
        "sluice.cli.staging_commands",
        "sluice.cli.model_commands",
        "sluice.cli.admin_commands",
    }
    assert not others & modules
    assert not heavy_modules(modules) and "grpc" not in modules


def test_the_help_lists_every_command_as_the_full_parser_has_it(capsys: pytest.CaptureFixture[str]) -> None:
    """The table `sluice --help` is built from says what the modules register, in order."""
    from sluice.cli.commands import COMMANDS
    from sluice.cli.main import build_parser, main

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert [(c.dest, c.help) for c in sub._choices_actions] == [(n, c.help) for n, c in COMMANDS.items()]
    with pytest.raises(SystemExit) as ended:
        main(["--help"])
    assert ended.value.code == 0
    out = re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))  # argparse wraps long lines
    assert all(name in out and command.help in out for name, command in COMMANDS.items())
    with pytest.raises(SystemExit) as ended:
        main(["batch-procesing", "list-jobs"])
    assert ended.value.code == 2
    assert "invalid choice: 'batch-procesing'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ended:
        main(["models", "--help"])
    assert ended.value.code == 0 and "export-triton" in capsys.readouterr().out


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
