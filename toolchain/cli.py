"""``toolchain`` command line: one entry point, one subcommand per stage.

Example:
    $ toolchain data --out data/synthetic --train 800 --val 200 --imgsz 256
    $ toolchain baseline --data data/synthetic/data.yaml --epochs 10 --imgsz 256
    $ toolchain eval --weights runs/baseline/weights/best.pt --data data/synthetic/data.yaml

Every subcommand takes ``--config FILE``: a YAML whose keys are that subcommand's options (with
``_`` for ``-``); flags given on the command line override it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from deploy.errors import ToolchainError
from toolchain.commands import COMMANDS

logger = logging.getLogger("toolchain")


def _apply_config(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Load ``--config`` (if any) into the parser's defaults, checking every key."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return
    path = Path(known.config)
    if not path.is_file():
        raise ToolchainError(f"{path}: config file not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ToolchainError(f"{path}: expected a mapping of option names to values")
    allowed = {a.dest for a in parser._actions if a.dest not in ("help", "config")}
    raw = {k.replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ToolchainError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    parser.set_defaults(**raw)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="toolchain", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subs = parser.add_subparsers(dest="command", required=True)
    parsers = {}
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        sub = subs.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--config", help="YAML of this command's options; flags override it")
        add_arguments(sub)
        parsers[name] = sub
    return parser, parsers


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; a ``ToolchainError`` is printed as one line and exits with 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, parsers = build_parser()
    try:
        command = next((a for a in argv if a in parsers), None)
        if command:
            _apply_config(parsers[command], argv[argv.index(command) + 1 :])
        args = parser.parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
        run: Callable[[argparse.Namespace], int | None] = COMMANDS[args.command][1]
        return run(args) or 0
    except ToolchainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
