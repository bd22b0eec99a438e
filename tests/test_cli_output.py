"""`--output json` of the CLI's list and show verbs, read as a script would: the CLI against the
scheduler mesh (real NATS, Postgres, staging and scheduler; this test plays the worker), its
stdout parsed with json.loads. The verbs run in this process, in a thread (the mesh serves from
this event loop); one more runs as a child process to check what a verb imports."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from datetime import datetime
from typing import Any

from nats.aio.client import Client

from sluice.cli.main import main
from sluice.v1 import scheduler_pb2
from tests.scheduler_mesh import IMAGES, Mesh, create_job, job_state, pretend_workers, report, take_tasks
from tests.test_cli_imports import heavy_modules

# A receiver that is not there; its path stands for a token that must not be printed.
HOOK = "http://127.0.0.1:9/hooks/s3cret"


def _connection(mesh: Mesh) -> list[str]:
    """The options that point the CLI at the mesh, as workspace alpha."""
    return [
        *("--api-key", mesh.keys["alpha"]),
        *("--scheduler-address", f"127.0.0.1:{mesh.scheduler.port}"),
        *("--staging-address", f"127.0.0.1:{mesh.staging.port}"),
    ]


def _stdout_of(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    assert code == 0, f"sluice {' '.join(argv)} exited {code}: {out.getvalue()}"
    return out.getvalue()


async def _json(mesh: Mesh, *args: str) -> Any:
    """`sluice ARGS --output json`, its stdout parsed."""
    return json.loads(await asyncio.to_thread(_stdout_of, [*args, "--output", "json", *_connection(mesh)]))


async def _child_process(mesh: Mesh, *args: str) -> tuple[str, str]:
    """`python -X importtime -m sluice.cli.main ARGS` in a child process; its stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-X", "importtime", "-m", "sluice.cli.main", *args, *_connection(mesh)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


def _is_rfc3339(text: str) -> bool:
    return text.endswith("Z") and datetime.fromisoformat(text).tzinfo is not None


async def _run_job(mesh: Mesh, nc: Client, job_id: str) -> None:
    """The mesh's 7-image job, every task reported done (one image failed) by pretend workers."""
    await create_job(mesh, job_id, notifications_url=HOOK)
    done = 0
    async with pretend_workers(nc, {"gpu": 2, "export": 1}):
        while done < IMAGES:
            for task in await take_tasks(nc, "gpu", job_id, 1):
                await report(nc, task, failed=1 if done == 0 else 0)
                done += len(task.input_names)
        (export,) = await take_tasks(nc, "export", job_id, 1)
        await report(nc, export)
        await job_state(mesh, job_id, scheduler_pb2.JOB_STATE_COMPLETED_WITH_ERRORS)


async def test_list_and_show_verbs_print_json_that_scripts_read(mesh: Mesh, nats_client: Client) -> None:
    await _run_job(mesh, nats_client, "scripted")

    jobs = await _json(mesh, "batch-processing", "list-jobs")
    job = await _json(mesh, "batch-processing", "show-job-details", "--job-id", "scripted")
    assert [(j["job_id"], j["state"], j["batch_id"]) for j in jobs] == [
        ("scripted", "completed with errors", "pics")
    ]
    assert (job["job_id"], job["workflow_id"], job["machine_type"]) == ("scripted", "wf", "gpu")
    assert job["state"] == "completed with errors" and job["attempt"] == 1
    stage, export = job["stages"]
    assert (stage["name"], export["name"], export["state"]) == ("processing", "export", "completed")
    assert (stage["state"], stage["items_done"], stage["items_total"], stage["items_failed"]) == (
        "completed",
        IMAGES,
        IMAGES,
        1,
    )
    assert isinstance(stage["task_counts"]["done"], int) and stage["task_counts"]["done"] >= 1
    assert _is_rfc3339(job["created_at"]) and _is_rfc3339(job["ended_at"])
    assert job["notifications_url"] == "http://127.0.0.1:9" and job["machine_seconds"] > 0
    assert "s3cret" not in json.dumps([jobs, job])

    usage = await _json(mesh, "usage")
    assert usage["workspace"] == "alpha"
    assert [(row["key"], row["jobs"]) for row in usage["rows"]] == [("scripted", 1)]
    assert usage["total"] == usage["rows"][0]["usage"] == job["usage"]
    assert set(job["usage"]) == {"cpu_seconds", "gpu_seconds", "credits"}

    logs = await _json(mesh, "batch-processing", "fetch-logs", "--job-id", "scripted")
    assert logs and all(record["severity"] in ("info", "warning", "error") for record in logs)
    events = await _json(mesh, "events", "--job-id", "scripted")
    kinds = [event["type"] for event in events]
    assert kinds[0] == "job_created" and kinds[-1] == "job_completed_with_errors", kinds
    assert all(event["job_id"] == "scripted" and _is_rfc3339(event["time"]) for event in events)

    batches = await _json(mesh, "data-staging", "list-batches")
    batch = await _json(mesh, "data-staging", "show-batch-details", "--batch-id", "pics")
    content = await _json(mesh, "data-staging", "list-batch-content", "--batch-id", "pics")
    assert [(b["type"], b["object_count"]) for b in batches if b["batch_id"] == "pics"] == [
        ("images", IMAGES)
    ]
    assert (batch["batch_id"], batch["type"], batch["part_count"]) == ("pics", "images", 1)
    assert batch["total_bytes"] == sum(o["size_bytes"] for o in content) > 0
    assert batch["expired_at"] is None and _is_rfc3339(batch["expires_at"])
    assert sorted(o["name"] for o in content) == [f"p{i}.jpg" for i in range(IMAGES)]
    assert all(o["video"] is None for o in content)

    workflows = await _json(mesh, "workflows", "list")
    workflow = await _json(mesh, "workflows", "show", "--workflow-id", "wf")
    assert [(w["workflow_id"], w["version"]) for w in workflows] == [("wf", 1)]
    steps = json.loads(workflow["definition_json"])["steps"]
    assert (workflow["workflow_id"], steps[0]["model_id"]) == ("wf", "sluice/text-detector")

    models = await _json(mesh, "models", "list")
    model = await _json(mesh, "models", "show", "--model-id", "sluice/text-detector")
    built_in = {m["model_id"]: m for m in models if m["built_in"]}
    assert "sluice/text-detector" in built_in and built_in["sluice/text-detector"]["created_at"] is None
    assert (model["model_id"], model["built_in"]) == ("sluice/text-detector", True)
    assert json.loads(model["spec_json"])["model_id"] == "sluice/text-detector"

    workspace = await _json(mesh, "admin", "show-workspace")
    workspaces = await _json(mesh, "admin", "list-workspaces")
    assert workspace["workspace"] == "alpha" and workspace["webhook_secret"]
    assert "alpha" in {w["workspace"] for w in workspaces}

    # The default stays the table, and showing a job imports nothing heavy (a fast start).
    out, err = await _child_process(mesh, "batch-processing", "show-job-details", "--job-id", "scripted")
    assert out.splitlines()[0].split() == ["job", "id", "scripted"]
    imported = {line.split("|")[-1].strip() for line in err.splitlines() if line.startswith("import time:")}
    assert not heavy_modules(imported)
