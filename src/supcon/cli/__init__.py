"""The ``supcon`` command line: a static table of subcommands, each a thin handler over the library.

Every training flag comes from :class:`supcon.config.Config` (``--batch-size`` sets
``batch_size``); ``--config FILE.yaml`` supplies defaults and flags override them. Nothing in the
library imports this package.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from supcon import distributed
from supcon.checkpoint import CheckpointError
from supcon.cli.commands import COMMANDS
from supcon.config import ConfigError
from supcon.data import DatasetError
from supcon.runfiles import RunDirError

__all__ = ["main", "build_parser", "COMMANDS"]

#: Errors that are the user's to fix: one line on stderr and exit code 2, never a traceback.
USER_ERRORS = (ConfigError, DatasetError, CheckpointError, RunDirError, FloatingPointError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supcon",
        description="Supervised Contrastive Learning (Khosla et al. 2020): pretrain, probe, compare.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        command.add_arguments(sub.add_parser(name, help=command.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        code = COMMANDS[args.command].run(args)
    except USER_ERRORS as exc:
        print(f"supcon {args.command}: error: {exc}", file=sys.stderr)
        return 2
    distributed.shutdown()  # under torchrun: wait for rank 0's final evaluation, then leave
    return code


if __name__ == "__main__":
    sys.exit(main())
