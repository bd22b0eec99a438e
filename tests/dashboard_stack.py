"""A real local stack for the dashboard's tests, and AppTest runs of its pages against it.

One stack serves every dashboard test (tests/dashboard/conftest.py); each test module works in a
workspace of its own (`DashboardStack.workspace`), so one module's jobs and batches are never in
another's pages, as for two teams sharing an installation. `DashboardStack.app("jobs")` is
Streamlit's AppTest of dashboard/sluice_dashboard/page_scripts/jobs.py, signed in with the
workspace's API key and pointed at the services, not yet run. `stage_photos` and `start_job`
drive the stack through the CLI as a user would.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from streamlit.testing.v1 import AppTest

from sluice.v1 import scheduler_pb2
from sluice_dashboard import session
from sluice_dashboard.client import Addresses, Services
from tests.images import photographs
from tests.local_stack import local_stack, sluice

PAGES = Path(__file__).resolve().parents[1] / "dashboard" / "sluice_dashboard" / "page_scripts"
WORKFLOWS = Path(__file__).resolve().parents[1] / "examples" / "workflows"
APP_TIMEOUT_S = 30.0


@dataclass
class DashboardStack:
    state: Path
    api_key: str
    addresses: Addresses
    workspace_id: str = "default"

    @classmethod
    def of(cls, state: Path) -> DashboardStack:
        """The stack in `state` as its own (admin) key of workspace default."""
        credentials = json.loads((state / "credentials.json").read_text())
        addresses = Addresses(credentials["staging_address"], credentials["scheduler_address"])
        return cls(state, credentials["api_key"], addresses)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sluice(self.state, *args, check=check, api_key=self.api_key)

    def workspace(self, workspace: str) -> DashboardStack:
        """The same stack as a new workspace's (non-admin) key; made with the admin CLI."""
        sluice(self.state, "admin", "create-workspace", "--workspace", workspace)
        out = sluice(
            self.state, "admin", "create-api-key", "--workspace", workspace, "--name", "tests"
        ).stdout
        key = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("api_key: "))
        return DashboardStack(self.state, key.strip(), self.addresses, workspace)

    @property
    def dashboard_url(self) -> str:
        """The dashboard process's address (a stack started with it)."""
        port = json.loads((self.state / "stack.json").read_text())["parts"]["dashboard"]["port"]
        return f"http://127.0.0.1:{port}"

    def services(self) -> Services:
        return Services(self.addresses, self.api_key, timeout_s=10.0)

    def app(self, page: str, signed_in: bool = True, **query: str) -> AppTest:
        """The page's AppTest (not yet run), signed in unless told otherwise."""
        at = AppTest.from_file(str(PAGES / f"{page}.py"), default_timeout=APP_TIMEOUT_S)
        at.session_state[session.ADDRESSES] = self.addresses
        if signed_in:
            at.session_state[session.API_KEY] = self.api_key
            at.session_state[session.WORKSPACE] = self.workspace_id
        for name, value in query.items():
            at.query_params[name] = value
        return at

    def stage_photos(self, folder: Path, batch_id: str, count: int, side: int = 160) -> Path:
        """`count` real photographs, shrunk to `side` pixels, staged as images batch `batch_id`."""
        folder.mkdir(parents=True, exist_ok=True)
        photos = photographs()
        for i in range(count):
            photo = photos[i % len(photos)]
            scale = side / max(photo.shape[:2])
            small = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)))
            cv2.imwrite(str(folder / f"photo-{i:03d}.jpg"), small)
        self.cli(
            "data-staging", "create-batch-of-images", "--images-dir", str(folder), "--batch-id", batch_id
        )
        return folder

    def ensure_workflow(self, workflow_id: str = "text-detection") -> None:
        self.cli(
            "workflows", "create", "--workflow-id", workflow_id,
            "--file", str(WORKFLOWS / f"{workflow_id}.json"),
        )  # fmt: skip

    def start_job(self, batch_id: str, job_id: str, *options: str, wait: bool = False) -> None:
        self.cli(
            "batch-processing", "process-images-with-workflow", "--workflow-id", "text-detection",
            "--batch-id", batch_id, "--job-id", job_id, *options, *(("--wait",) if wait else ()),
        )  # fmt: skip

    def job(self, job_id: str) -> Any:
        return self.services().call("scheduler", "GetJob", scheduler_pb2.GetJobRequest(job_id=job_id))


def dashboard_stack(prefix: str, *, dashboard: bool = False) -> Iterator[DashboardStack]:
    """A started local stack (with the dashboard process only when asked) as a DashboardStack."""
    stack = local_stack(prefix, dashboard=dashboard)
    state = next(stack)
    try:
        yield DashboardStack.of(state)
    finally:
        stack.close()  # stops the stack and removes its folder
