"""`sluice`: the command line. Errors are one clear line on stderr and a non-zero exit.

The parser is built from light modules only (argparse, the generated protobuf messages, gRPC's
status codes): each verb imports what else it needs (the models, progress bars, the stack's
process code) when it runs, so `sluice --help` and the list and show verbs start fast
(tests/test_cli_imports.py keeps it so; `python -m bench.cli_start` times it).
"""

from __future__ import annotations

import argparse
import sys

from sluice.cli import (
    admin_commands,
    event_commands,
    job_commands,
    model_commands,
    stack,
    staging_commands,
    triton_commands,
    usage_commands,
    workflow_commands,
)
from sluice.cli.context import add_connection_options
from sluice.errors import SluiceError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sluice",
        description="Batch processing of images and videos with computer-vision workflows.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection_options = argparse.ArgumentParser(add_help=False)
    add_connection_options(connection_options)
    stack.register(sub)
    staging_commands.register(sub, [connection_options])
    workflow_commands.register(sub, [connection_options])
    job_commands.register(sub, [connection_options])
    models = model_commands.register(sub, [connection_options])
    triton_commands.register_export(models, [connection_options])
    usage_commands.register(sub, [connection_options])
    admin_commands.register(sub, [connection_options])
    event_commands.register(sub, [connection_options])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # `--help` ends here, before gRPC is imported
    import grpc

    from sluice.errors import from_rpc_error

    try:
        return int(args.func(args))
    except SluiceError as error:
        print(f"error: {error.message}", file=sys.stderr)
    except grpc.RpcError as error:
        print(f"error: {from_rpc_error(error).message}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
