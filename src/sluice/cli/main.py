"""`sluice`: the command line. Errors are one clear line on stderr and a non-zero exit.

`sluice --help` (and a missing or unknown command's error) is built from the command table in
cli/commands.py alone. A run of one command imports and registers only that command's module,
whose parser is built from light modules (argparse, the generated protobuf messages): each verb
imports what else it needs (gRPC, the models, progress bars, the stack's process code) when it
runs, so the command line starts fast (tests/test_cli_imports.py keeps it so; `python -m
bench.cli_start` times it).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from sluice.cli.commands import COMMANDS
from sluice.errors import SluiceError

DESCRIPTION = "Batch processing of images and videos with computer-vision workflows."


def _top_level() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="sluice", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, sub


def _register(module_name: str, sub: argparse._SubParsersAction) -> None:
    """Import the CLI module `module_name` and add its commands (with their options) to `sub`."""
    module = importlib.import_module(f"sluice.cli.{module_name}")
    if module_name == "stack":
        module.register(sub)
        return
    from sluice.cli.context import add_connection_options

    connection_options = argparse.ArgumentParser(add_help=False)
    add_connection_options(connection_options)
    group = module.register(sub, [connection_options])
    if module_name == "model_commands":
        from sluice.cli import triton_commands

        triton_commands.register_export(group, [connection_options])


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of `command` (what a run of it needs: one module)."""
    parser, sub = _top_level()
    modules = [COMMANDS[command].module] if command is not None else [c.module for c in COMMANDS.values()]
    for module_name in dict.fromkeys(modules):
        _register(module_name, sub)
    return parser


def overview_parser() -> argparse.ArgumentParser:
    """The commands and their one-line help, none of their options: `sluice --help`, a missing
    or unknown command's error, built from the table alone."""
    parser, sub = _top_level()
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.help, add_help=False)
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse a command line, importing only the module of the command it names."""
    command = argv[0] if argv else None
    if command not in COMMANDS:
        overview_parser().parse_args(argv)  # prints help, or the error naming the commands; exits
        raise AssertionError("the overview parser accepted a command it does not know")
    return build_parser(command).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)  # `--help` ends here, before gRPC is imported
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
