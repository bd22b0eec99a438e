"""A user's install: a wheel of the checkout, `pip install`ed into a fresh venv with its dependencies
from the index, is a complete Sluice (`pip check` clean, the shipped text-reading workflow runs
on real photographs with the built-in models) with no second install step."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from tests.images import PHOTOS, photographs

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "workflows" / "text-reading.json"
# What a wheel build never reads (the ignored paths of .gitignore, and the repository itself).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".sluice", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", "build", "dist", "demo-output",
)  # fmt: skip


def user_env(venv: Path) -> dict[str, str]:
    """The environment of a shell with only `venv` activated: none of the dev venv, no SLUICE_*."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLUICE_") and k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(
    venv: Path, *command: str, timeout_s: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a program of `venv` (bin/NAME) from a folder outside the checkout."""
    program = [str(venv / "bin" / command[0]), *command[1:]]
    result = subprocess.run(
        program,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=user_env(venv),
        cwd=venv.parent,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def pip(
    *args: str, venv: Path, timeout_s: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `pip ARGS` on the environment of `venv`."""
    command = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_s, env=user_env(venv), check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"pip {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv holding a wheel of the checkout and what pip resolved for it, nothing else;
    removed afterwards (it is about a gigabyte)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    wheels = base / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("sluice-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    # This pip installs into the venv (--python) rather than a copy of its own there (ensurepip's
    # is old and slow), and skips byte-compiling what the test never imports: half the time.
    pip("install", "--quiet", "--no-compile", str(wheel), venv=venv, timeout_s=900)
    yield venv
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture()
def images_dir(tmp_path: Path) -> Path:
    """The test photographs as JPEGs, among them a printed page and a sign of text."""
    for name, photo in zip(PHOTOS, photographs(), strict=True):
        assert cv2.imwrite(str(tmp_path / f"{Path(name).stem}.jpg"), photo)
    return tmp_path


@pytest.fixture()
def state(venv: Path) -> Iterator[Path]:
    """A stack started by the installed `sluice`; stopped (and its log tails printed) at the end."""
    # Under /tmp and open to all: the unprivileged PostgreSQL user must reach it.
    folder = Path(tempfile.mkdtemp(prefix="sluice-packaging-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        run(venv, "sluice", "up", "--state-dir", str(folder), "--no-dashboard", "--workers-per-machine", "1")
        yield folder
    finally:
        run(venv, "sluice", "down", "--state-dir", str(folder), check=False)
        for log in sorted((folder / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        shutil.rmtree(folder, ignore_errors=True)


def test_pip_finds_no_broken_requirements_and_one_opencv(venv: Path) -> None:
    assert "No broken requirements found." in pip("check", venv=venv).stdout
    # Two OpenCV builds share the cv2/ folder and overwrite each other's files.
    assert pip("show", "opencv-python-headless", venv=venv, check=False).returncode != 0
    run(venv, "python", "-c", "import cv2, numpy; cv2.imdecode(numpy.zeros(8, numpy.uint8), 1)")


def test_the_installed_sluice_reads_text_in_photographs(venv: Path, state: Path, images_dir: Path) -> None:
    def sluice(*args: str) -> str:
        return run(venv, "sluice", *args, "--state-dir", str(state)).stdout

    sluice("workflows", "create", "--workflow-id", "text", "--file", str(WORKFLOW))
    sluice("data-staging", "create-batch-of-images", "--images-dir", str(images_dir), "--batch-id", "photos")
    out = sluice(
        "batch-processing", "process-images-with-workflow", "--workflow-id", "text",
        "--batch-id", "photos", "--job-id", "read", "--wait",
    )  # fmt: skip
    assert "completed with errors" not in out, out
    target = images_dir / "export"
    sluice("data-staging", "export-batch", "--batch-id", "read-export", "--target-dir", str(target))
    records = [json.loads(line) for line in (target / "results.jsonl").read_text().splitlines()]
    assert sorted(r["image"] for r in records) == sorted(f"{Path(n).stem}.jpg" for n in PHOTOS)
    assert [r for r in records if r["status"] != "ok"] == []
    page = next(r for r in records if r["image"] == "page.jpg")
    assert any("segmentation" in text.lower() for text in page["outputs"]["texts"]), page["outputs"]
