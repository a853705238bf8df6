"""QAT levers for small-object AP: one ``toolchain qat`` run per lever, then what each did on the
split nothing was selected on.

Each lever is a set of ``toolchain qat`` flags over one ``--config``; its run is
``<project>/<prefix>-<lever>`` (``runs/qat/`` by default). A run whose ``report.json`` exists is
reused and an interrupted one is resumed from its ``last.pt``, so rerunning the command continues
where it stopped (``--force`` starts every run afresh). Then every lever's QAT ONNX and the FP32
ONNX are scored through ONNX Runtime on data.yaml's ``test`` split (``val`` when it has none, flagged
as optimistic), and each lever is compared with FP32 and with the first lever on one set of paired
image resamples.

The goal it checks (a QAT small-object AP within 1 point of FP32 without losing mAP50-95): AP small
at most ``SMALL_TOLERANCE`` below FP32, and a mAP50-95 difference to FP32 that is not a real loss (its
interval does not lie wholly below 0).

What it showed (docs/results.md, "QAT levers on road-signs"): no lever differed from the config as it
is beyond noise, and no lever's mAP50-95 from FP32's. Run by hand, no make target.

Example:
    $ python -m toolchain.cli split-data --data ../shared/datasets/road-signs/data.yaml \\
          --out /tmp/rs-split/data.yaml --test-fraction 0.5 --seed 0
    $ python -m benchmarks.qat_levers --data /tmp/rs-split/data.yaml \\
          --weights ../shared/models/road-signs-yolov8n-384.pt --prefix rs-lever
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from base.errors import ToolchainError, UsageError, report_errors
from base.fileio import atomic_path, write_json
from deploy.bootstrap import Difference
from toolchain.training.qat_report import METRICS, SELECTED_ON, differences, evaluate_onnx, report_split

LEVERS = {
    "default": [],
    "distill": ["--train.loss.distill", "1.0"],
    "distill-1000": ["--train.loss.distill", "1000"],
    "lr0-5e-5": ["--lr0", "5e-5"],
    "bn-free-2": ["--freeze-bn-epoch", "2"],
    "epochs-10": ["--epochs", "10"],
}
"""The levers tried by default: the config as it is; distillation from the FP32 teacher at weight 1
(about 1e-4 of the detection loss on road-signs: the head outputs' MSE is small) and 1000 (about 3%);
a quarter of the learning rate; BatchNorm statistics updating for the first two epochs; twice the
epochs."""
SMALL_TOLERANCE = 0.01
"""QAT AP small at most this far below FP32 (1 point) meets the goal."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qat_levers", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--data", required=True, help="data.yaml, best with a test split (toolchain split-data)")
    parser.add_argument("--weights", required=True, help="the FP32 .pt every lever starts from")
    parser.add_argument("--config", default="configs/qat.yaml", help="the QAT config every lever starts from")
    parser.add_argument("--project", default="runs/qat", help="the folder of the runs")
    parser.add_argument("--prefix", default="lever", help="runs are <project>/<prefix>-<lever>")
    parser.add_argument("--lever", action="append", default=[], metavar="NAME=FLAGS",
                        help="add or replace a lever: its toolchain qat flags, e.g. 'lr0-1e-4=--lr0 1e-4'")  # fmt: skip
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these levers only, in this order")
    parser.add_argument("--force", action="store_true", help="rerun levers that already have a report")
    parser.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples")
    parser.add_argument("--out", help="the table (.md) and .json; default: <project>/<prefix>-levers.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    return report_errors(_run, build_parser().parse_args(argv))


def levers_from(extra: list[str], only: list[str] | None) -> dict[str, list[str]]:
    """``LEVERS`` with each ``NAME=FLAGS`` of ``extra`` added or replaced, restricted to ``only``.

    Raises:
        UsageError: A lever that is not ``NAME=FLAGS``, or an ``only`` name no lever has.
    """
    levers = dict(LEVERS)
    for item in extra:
        name, sep, flags = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--lever {item!r}: expected NAME=FLAGS, e.g. 'lr0-1e-4=--lr0 1e-4'")
        levers[name.strip()] = shlex.split(flags)
    if only:
        unknown = [n for n in only if n not in levers]
        if unknown:
            raise UsageError(f"--only {' '.join(unknown)}: no such lever; the levers are {', '.join(levers)}")
        levers = {n: levers[n] for n in only}
    return levers


def run_lever(name: str, flags: list[str], args: argparse.Namespace) -> Path:
    """The run folder of one lever, trained (or resumed) by ``toolchain qat`` unless already reported."""
    run = Path(args.project) / name
    if (run / "report.json").is_file() and not args.force:
        print(f"{name}: reusing {run / 'report.json'}", flush=True)
        return run
    resume = ["--resume"] if (run / "weights" / "last.pt").is_file() and not args.force else []
    cmd = [sys.executable, "-m", "toolchain.cli", "qat", "--config", args.config, "--weights", args.weights,
           "--data", args.data, "--project", args.project, "--name", name, *flags, *resume]  # fmt: skip
    print(f"{name}: {shlex.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd)
    if done.returncode:
        raise ToolchainError(f"lever {name}: toolchain qat exited {done.returncode}; rerun this command to resume it")
    print(f"{name}: done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return run


def compare(runs: dict[str, Path], data: str, resamples: int) -> dict:
    """Every lever's QAT ONNX and the FP32 ONNX scored on one split; each lever against FP32 and
    against the first lever (paired bootstrap on shared resamples), with the goal's verdict."""
    split = report_split(data)
    first = next(iter(runs))
    paths = {"FP32": runs[first] / "fp32.onnx", **{n: r / "qat.int8.onnx" for n, r in runs.items()}}
    results = evaluate_onnx(paths, split)
    if results["FP32"].ap_small is None:
        raise ToolchainError(f"{data}: the {split.name} split has no small box (under 32x32 px): no small-object AP "
                             "to compare")  # fmt: skip
    pairs = [(n, "FP32") for n in runs] + [(n, first) for n in runs if n != first]
    diffs = differences(results, resamples, pairs=pairs)
    rows = {}
    for name in runs:
        vs_fp32 = {m: d[f"{name} - FP32"] for m, d in diffs.items()}
        vs_first = {m: d[f"{name} - {first}"] for m, d in diffs.items()} if name != first else None
        rows[name] = {"flags": None, "results": results[name].to_dict(), "vs_fp32": vs_fp32, "vs_first": vs_first,
                      "goal": goal_met(vs_fp32)}  # fmt: skip
    return {"split": split.name, "images": results["FP32"].images, "optimistic": split.name == SELECTED_ON,
            "fp32": results["FP32"].to_dict(), "first": first, "levers": rows}  # fmt: skip


def goal_met(vs_fp32: dict[str, Difference]) -> bool:
    """AP small at most ``SMALL_TOLERANCE`` below FP32 and no real loss of mAP50-95."""
    small, overall = vs_fp32["ap_small"], vs_fp32["map50_95"]
    return small.delta >= -SMALL_TOLERANCE and not (overall.real and overall.delta < 0)


def markdown(table: dict, levers: dict[str, list[str]]) -> str:
    """The levers' table: metrics, differences to FP32 and to the first lever, the goal's verdict."""
    fp32, first = table["fp32"], table["first"]
    where = (f"{table['split']} split, {table['images']} images"
             + (" (the split best.pt was selected on: optimistic)" if table["optimistic"] else ""))  # fmt: skip
    lines = [
        f"QAT levers on the {where}; FP32: mAP50-95 {fp32['map50_95']:.4f}, AP small {fp32['ap_small']:.4f}.",
        f"Goal: AP small within {SMALL_TOLERANCE * 100:.0f} point of FP32 and no real mAP50-95 loss.",
        "",
        "| lever | flags | mAP50-95 | AP small | mAP50-95 - FP32 | AP small - FP32 | "
        f"mAP50-95 - {first} | AP small - {first} | goal |",
        "|" + "---|" * 9,
    ]
    for name, row in table["levers"].items():
        res, fp, fl = row["results"], row["vs_fp32"], row["vs_first"]
        vs_first = [fl[m].describe() for m in METRICS] if fl else ["-", "-"]
        verdict = "met" if row["goal"] else "not met"
        cells = [name, shlex.join(levers[name]) or "(config)", f"{res['map50_95']:.4f}", _fmt(res["ap_small"]),
                 fp["map50_95"].describe(), fp["ap_small"].describe(), *vs_first, verdict]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Paired bootstrap intervals (95%) over the same images: a difference is real only when its "
              "interval excludes 0."]  # fmt: skip
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _run(args: argparse.Namespace) -> None:
    levers = levers_from(args.lever, args.only)
    runs = {name: run_lever(f"{args.prefix}-{name}", flags, args) for name, flags in levers.items()}
    table = compare(runs, args.data, args.resamples)
    text = markdown(table, levers)
    out = Path(args.out or Path(args.project) / f"{args.prefix}-levers.md")
    with atomic_path(out) as tmp:
        tmp.write_text(text + "\n")
    for name, row in table["levers"].items():
        row["flags"] = levers[name]
        row["vs_fp32"] = {m: d.to_dict() for m, d in row["vs_fp32"].items()}
        row["vs_first"] = row["vs_first"] and {m: d.to_dict() for m, d in row["vs_first"].items()}
    write_json(out.with_suffix(".json"), table)
    print(text)
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    sys.exit(main())
