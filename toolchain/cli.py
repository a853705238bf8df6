"""``toolchain`` command line: one entry point, one subcommand per stage.

Example:
    $ toolchain data --out data/synthetic --train 800 --val 200 --imgsz 256
    $ toolchain baseline --data data/synthetic/data.yaml --epochs 10 --imgsz 256
    $ toolchain qat --weights best.pt --data data.yaml --quant.input.percentile 99.9 --loss '{distill: 1}'
    $ toolchain eval --weights runs/baseline/weights/best.pt --data data/synthetic/data.yaml --conf 0.25

Each subcommand's flags come from the fields of its config dataclass: every setting has a flag
named by its dotted key (``--train.lr0``, ``--quant.input.percentile``), most used ones also a
short one (``--lr0``). ``--config FILE.yaml`` is merged recursively over the defaults (a partial
section keeps the rest of its defaults; lists and values replace), and flags go over that. The
resolved config is written beside every output, and ``--config`` of it runs the same job again.
A mistake in a flag or a config value is one line and exit status 2, before any work starts.
"""

from __future__ import annotations

import argparse
import logging
import sys

from base.errors import UsageError, report_errors
from deploy.qdq_check import main as check_qdq_main
from toolchain.commands import COMMANDS
from toolchain.config.flags import add_flags, resolve

logger = logging.getLogger("toolchain")
PASSTHROUGH = {"check-qdq": "check ONNX files against TensorRT's QDQ rules (deploy's check-qdq; its --help)"}


class _Parser(argparse.ArgumentParser):
    """No abbreviations, and a usage mistake raised as one ``UsageError`` line instead of argparse's usage dump."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser, one sub-parser per command with flags generated from its config."""
    parser = _Parser(prog="toolchain", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subs = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in COMMANDS.values():
        usage = f"toolchain {command.name} [--config FILE] [--KEY VALUE ...]"
        add_flags(subs.add_parser(command.name, help=command.help, description=command.help, usage=usage), command)
    for name, help_text in PASSTHROUGH.items():
        sub = subs.add_parser(name, help=help_text, add_help=False)
        sub.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _run(argv: list[str]) -> int | None:
    if argv[:1] == ["check-qdq"]:  # deploy's own command line, its flags and --help untouched
        return _check_qdq(argv[1:])
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.command == "check-qdq":
        return _check_qdq(args.args)
    command = COMMANDS[args.command]
    return command.run(resolve(command, args))


def _check_qdq(argv: list[str]) -> int:
    try:
        return check_qdq_main(argv)
    except SystemExit as exc:  # its argparse: --help (0) or a usage mistake (2)
        return int(exc.code or 0)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every error becomes its exit status through ``base.errors.report_errors``
    (2: a flag or config mistake, 1: a failure, 130/143: interrupted)."""
    return report_errors(_run, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
