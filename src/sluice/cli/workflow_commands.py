"""`sluice workflows create|list|show`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sluice.cli.commands import command_help
from sluice.cli.context import connection
from sluice.cli.output import (
    add_output_option,
    message_document,
    print_json,
    print_messages,
    table,
    wants_json,
    when,
)
from sluice.errors import InvalidArgument
from sluice.ids import validate_id
from sluice.v1 import scheduler_pb2


def create(args: argparse.Namespace) -> int:
    workflow_id = validate_id(args.workflow_id, "workflow id")
    path: Path = args.file
    if not path.is_file():
        raise InvalidArgument(f"workflow file {path} does not exist")
    conn = connection(args)
    workflow = conn.scheduler().CreateWorkflow(
        scheduler_pb2.CreateWorkflowRequest(workflow_id=workflow_id, definition_json=path.read_text()),
        metadata=conn.metadata,
    )
    print(f"workflow {workflow.workflow_id} version {workflow.version}")
    return 0


def list_workflows(args: argparse.Namespace) -> int:
    conn = connection(args)
    found = conn.scheduler().ListWorkflows(scheduler_pb2.ListWorkflowsRequest(), metadata=conn.metadata)
    if wants_json(args):
        print_messages(found.workflows)
        return 0
    if not found.workflows:
        print("no workflows")
        return 0
    rows = []
    for w in found.workflows:
        steps = json.loads(w.definition_json).get("steps", [])
        rows.append((w.workflow_id, w.version, len(steps), when(w.created_at)))
    print(table(["WORKFLOW", "VERSION", "STEPS", "CREATED"], rows))
    return 0


def show(args: argparse.Namespace) -> int:
    conn = connection(args)
    workflow = conn.scheduler().GetWorkflow(
        scheduler_pb2.GetWorkflowRequest(
            workflow_id=validate_id(args.workflow_id, "workflow id"), version=args.version
        ),
        metadata=conn.metadata,
    )
    if wants_json(args):
        print_json(message_document(workflow))
        return 0
    print(f"# workflow {workflow.workflow_id} version {workflow.version}, {when(workflow.created_at)}")
    print(json.dumps(json.loads(workflow.definition_json), indent=2))
    return 0


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("workflows", help=command_help("workflows")).add_subparsers(
        dest="verb", required=True, metavar="VERB"
    )
    p = group.add_parser("create", parents=parents, help="store a workflow from a JSON file")
    p.add_argument("--workflow-id", "-w", required=True)
    p.add_argument("--file", "-f", type=Path, required=True, help="the workflow definition (JSON)")
    p.set_defaults(func=create)
    p = group.add_parser("list", parents=parents, help="list workflows (latest versions)")
    add_output_option(p)
    p.set_defaults(func=list_workflows)
    p = group.add_parser("show", parents=parents, help="print a workflow definition")
    p.add_argument("--workflow-id", "-w", required=True)
    p.add_argument("--version", type=int, default=0, help="a version (default: the latest)")
    add_output_option(p)
    p.set_defaults(func=show)
