"""The generated code matches protos/, and the services keep to their own code."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ["sluice_staging", "sluice_scheduler", "sluice_worker", "sluice_exporter"]


def _load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    written = _load_generator().generate(tmp_path)
    fresh = {p.name: p.read_bytes() for p in written}
    committed_dir = ROOT / "src" / "sluice" / "v1"
    committed = {p.name: p.read_bytes() for p in committed_dir.iterdir() if p.suffix in {".py", ".pyi"}}
    assert sorted(fresh) == sorted(committed), "generated files differ: run make protos"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"{stale} drifted from protos/: run make protos"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    folder = ROOT / "services" / service.removeprefix("sluice_") / service
    others = set(SERVICES) - {service}
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & others) for path in folder.rglob("*.py")
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_library_imports_no_service() -> None:
    for path in (ROOT / "src" / "sluice").rglob("*.py"):
        assert not _imports(path) & set(SERVICES), path


def test_dashboard_imports_no_service() -> None:
    """The dashboard is a gRPC client like any other: the library's contracts, never a service."""
    for path in (ROOT / "dashboard" / "sluice_dashboard").rglob("*.py"):
        assert not _imports(path) & set(SERVICES), path
