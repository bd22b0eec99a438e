"""`sluice admin ...`: workspaces and API keys (the AdminService, at the scheduler's address).

Every verb but show-workspace needs an admin key (the local stack's own key is one).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from sluice.cli.commands import command_help
from sluice.cli.context import Connection, connection
from sluice.cli.output import (
    add_output_option,
    message_document,
    print_json,
    print_messages,
    table,
    wants_json,
    when,
)
from sluice.ids import ID_RULE, validate_id
from sluice.v1 import admin_pb2

if TYPE_CHECKING:
    from sluice.v1 import admin_pb2_grpc


def _stub(conn: Connection) -> admin_pb2_grpc.AdminServiceStub:
    from sluice.clients import channel
    from sluice.v1 import admin_pb2_grpc

    return admin_pb2_grpc.AdminServiceStub(channel(conn.scheduler_address))


def _print_workspace(workspace: admin_pb2.Workspace) -> None:
    print(f"workspace: {workspace.workspace}")
    print(f"webhook_secret: {workspace.webhook_secret}")


def create_workspace(args: argparse.Namespace) -> int:
    name = validate_id(args.workspace, "workspace")
    conn = connection(args)
    created = _stub(conn).CreateWorkspace(
        admin_pb2.CreateWorkspaceRequest(workspace=name), metadata=conn.metadata
    )
    _print_workspace(created)
    return 0


def show_workspace(args: argparse.Namespace) -> int:
    conn = connection(args)
    workspace = _stub(conn).GetWorkspace(admin_pb2.GetWorkspaceRequest(), metadata=conn.metadata)
    if wants_json(args):
        print_json(message_document(workspace))
        return 0
    _print_workspace(workspace)
    return 0


def list_workspaces(args: argparse.Namespace) -> int:
    conn = connection(args)
    found = _stub(conn).ListWorkspaces(admin_pb2.ListWorkspacesRequest(), metadata=conn.metadata)
    if wants_json(args):
        print_messages(found.workspaces)
        return 0
    print(table(["WORKSPACE", "CREATED"], [(w.workspace, when(w.created_at)) for w in found.workspaces]))
    return 0


def create_api_key(args: argparse.Namespace) -> int:
    workspace = validate_id(args.workspace, "workspace")
    conn = connection(args)
    created = _stub(conn).CreateApiKey(
        admin_pb2.CreateApiKeyRequest(workspace=workspace, name=args.name, admin=args.admin),
        metadata=conn.metadata,
    )
    print(f"key_id: {created.key.key_id}")
    print(f"workspace: {created.key.workspace}")
    print(f"api_key: {created.api_key}")
    print(f"nats_user: {created.key.nats_user}")
    kind = "an admin key" if created.key.admin else "a key"
    print(
        f"This is {kind} of workspace {created.key.workspace}. The api_key (also the NATS password "
        "of nats_user) is shown only once: store it now."
    )
    return 0


def list_api_keys(args: argparse.Namespace) -> int:
    workspace = validate_id(args.workspace, "workspace") if args.workspace else ""
    conn = connection(args)
    found = _stub(conn).ListApiKeys(
        admin_pb2.ListApiKeysRequest(workspace=workspace, include_revoked=args.include_revoked),
        metadata=conn.metadata,
    )
    if wants_json(args):
        print_messages(found.keys)
        return 0
    if not found.keys:
        print("no API keys")
        return 0
    rows = [
        (
            k.key_id,
            k.workspace,
            k.name or "-",
            "yes" if k.admin else "no",
            when(k.created_at),
            when(k.revoked_at) if k.HasField("revoked_at") else "-",
        )
        for k in found.keys
    ]
    print(table(["KEY_ID", "WORKSPACE", "NAME", "ADMIN", "CREATED", "REVOKED"], rows))
    return 0


def revoke_api_key(args: argparse.Namespace) -> int:
    conn = connection(args)
    key = _stub(conn).RevokeApiKey(admin_pb2.RevokeApiKeyRequest(key_id=args.key_id), metadata=conn.metadata)
    print(f"key {key.key_id} of workspace {key.workspace} revoked at {when(key.revoked_at)}")
    return 0


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    verbs = sub.add_parser("admin", help=command_help("admin")).add_subparsers(
        dest="verb", required=True, metavar="VERB"
    )

    p = verbs.add_parser("create-workspace", parents=parents, help="create a workspace")
    p.add_argument("--workspace", required=True, help=ID_RULE)
    p.set_defaults(func=create_workspace)

    p = verbs.add_parser(
        "show-workspace", parents=parents, help="your key's workspace and its webhook signing secret"
    )
    add_output_option(p)
    p.set_defaults(func=show_workspace)

    p = verbs.add_parser("list-workspaces", parents=parents, help="list every workspace")
    add_output_option(p)
    p.set_defaults(func=list_workspaces)

    p = verbs.add_parser(
        "create-api-key", parents=parents, help="create an API key of a workspace (shown only once)"
    )
    p.add_argument("--workspace", required=True, help="the workspace the key acts in")
    p.add_argument("--name", default="", help="what the key is for (shown in list-api-keys)")
    p.add_argument("--admin", action="store_true", help="the key may run the admin verbs")
    p.set_defaults(func=create_api_key)

    p = verbs.add_parser("list-api-keys", parents=parents, help="list API keys (never their secrets)")
    p.add_argument("--workspace", help="only this workspace's keys (default: every workspace's)")
    p.add_argument("--include-revoked", action="store_true", help="list revoked keys too")
    add_output_option(p)
    p.set_defaults(func=list_api_keys)

    p = verbs.add_parser(
        "revoke-api-key", parents=parents, help="revoke an API key (refused everywhere within seconds)"
    )
    p.add_argument("--key-id", required=True, help="the key's id (key_...), from list-api-keys")
    p.set_defaults(func=revoke_api_key)
