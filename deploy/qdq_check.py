"""``check-qdq``: TensorRT's rules for explicitly quantized (QDQ) ONNX, checked on any model, torch-free.

The rules and what each one asks are listed in ``deploy.qdq.rules``; this module is their command
line.

Example:
    $ check-qdq model.int8.onnx            # exit 1 when a rule is broken (or on an unreadable file)
    $ python -m deploy.qdq_check a.onnx b.onnx --json report.json
    $ check-qdq fp32.onnx --allow-float    # a float model is not an error
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from base.errors import report_errors
from base.fileio import check_distinct_paths, check_output_file, write_json
from deploy.qdq.rules import check_qdq


def _check_files(args: argparse.Namespace) -> int:
    if args.json:
        check_distinct_paths({"--json": args.json}, {f"ONNX {i + 1}": p for i, p in enumerate(args.onnx)})
        check_output_file(args.json, "--json")
    reports = [check_qdq(p, args.allow_float) for p in args.onnx]
    for r in reports:
        lines = r.summary().splitlines()
        print("\n".join(lines[: args.max_lines + 1]))
        if len(lines) > args.max_lines + 1:
            print(f"  ... {len(lines) - args.max_lines - 1} more")
    if args.json:
        write_json(args.json, [asdict(r) for r in reports])
    return 0 if all(r.ok for r in reports) else 1


def main(argv: list[str] | None = None) -> int:
    """CLI: check each file, print the reports; exit 1 if any has a violation or cannot be read,
    2 on a bad flag."""
    parser = argparse.ArgumentParser(prog="check-qdq", description=__doc__.split("\n")[0])
    parser.add_argument("onnx", nargs="+", help="ONNX files")
    parser.add_argument("--json", help="write the reports to this JSON file")
    parser.add_argument("--max-lines", type=int, default=30, help="violations printed per model")
    parser.add_argument("--allow-float", action="store_true", help="accept models without any quantized conv")
    return report_errors(_check_files, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
