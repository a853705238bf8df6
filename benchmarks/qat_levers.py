"""QAT levers for small-object AP: one ``toolchain qat`` run per lever, then what each did on the
split nothing was selected on.

Each lever is a set of ``toolchain qat`` flags over one ``--config``; its run is
``<project>/<prefix>-<lever>`` (``runs/qat/`` by default). A run whose ``report.json`` exists is
reused and an interrupted one is resumed from its ``last.pt``, so rerunning the command continues
where it stopped (``--force`` starts every run afresh). Then every lever's QAT ONNX and the FP32
ONNX and the first lever's PTQ ONNX are scored through ONNX Runtime on data.yaml's ``test`` split
(``val`` when it has none, flagged as optimistic); each lever is compared with FP32 and with PTQ, and
PTQ with FP32, on one set of paired image resamples.

The goal it checks (issue #22): QAT mAP50-95 within ``FP32_TOLERANCE`` of FP32 with an interval
containing 0, above PTQ with an interval excluding 0, and AP small at most ``SMALL_TOLERANCE`` below
FP32. Without ``--only`` it runs ``HARD_CASE`` (and ``teacher`` with ``--teacher``); the road-signs
study of docs/results.md is the first example below. Run by hand (``make hard-case`` makes its data).

Example:
    $ python -m toolchain.cli split-data --data ../shared/datasets/road-signs/data.yaml \\
          --out /tmp/rs-split/data.yaml --test-fraction 0.5 --seed 0
    $ python -m benchmarks.qat_levers --data /tmp/rs-split/data.yaml \\
          --weights ../shared/models/road-signs-yolov8n-384.pt --prefix rs-lever \\
          --only default distill distill-1000 lr0-5e-5 bn-free-2 epochs-10
    $ python -m benchmarks.qat_levers --data data/hard/road-signs-k3/data.yaml \\
          --weights runs/hard-rs-k3/weights/best.pt --prefix hard-k3
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
from toolchain.config.files import read_yaml_mapping
from toolchain.training.qat_report import SELECTED_ON, differences, evaluate_onnx, report_split

LEVERS = {
    "default": [],
    "distill": ["--train.loss.distill", "1.0"],
    "distill-1000": ["--train.loss.distill", "1000"],
    "lr0-5e-5": ["--lr0", "5e-5"],
    "bn-free-2": ["--freeze-bn-epoch", "2"],
    "epochs-10": ["--epochs", "10"],
    "penalty": ["--train.loss.quant-penalty", "10"],
    "sensitive": ["--quant.preset", "sensitive"],
}
"""The levers known by name: the config as it is; distillation from the FP32 teacher at weight 1
(about 1e-4 of the detection loss on road-signs: the head outputs' MSE is small) and 1000 (about 3%);
a quarter of the learning rate; BatchNorm statistics updating for the first two epochs; twice the
epochs; the weight penalty towards the INT8 grid; the ``sensitive`` preset. ``--teacher FILE`` adds
``teacher``: distillation (head outputs and features) from that FP32 .pt of another size."""
HARD_CASE = ("default", "distill-1000", "penalty", "sensitive")
"""The levers run when ``--only`` is not given (``teacher`` too with ``--teacher``): the hard case's table."""
SMALL_TOLERANCE = 0.01
"""QAT AP small at most this far below FP32 (1 point) meets the goal."""
FP32_TOLERANCE = 0.003
"""QAT mAP50-95 at most this far below FP32 (0.3 points), its interval containing 0, meets the goal."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qat_levers", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--data", required=True, help="data.yaml, best with a test split (toolchain split-data)")
    parser.add_argument("--weights", required=True, help="the FP32 .pt every lever starts from")
    parser.add_argument("--config", default="configs/qat.yaml", help="the QAT config every lever starts from")
    parser.add_argument("--project", default="runs/qat", help="the folder of the runs")
    parser.add_argument("--prefix", default="lever", help="runs are <project>/<prefix>-<lever>")
    parser.add_argument("--lever", action="append", default=[], metavar="NAME=FLAGS",
                        help="add or replace a lever: its toolchain qat flags, e.g. 'lr0-1e-4=--lr0 1e-4'")  # fmt: skip
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"run these levers only, in this order (default: {' '.join(HARD_CASE)}, and teacher with --teacher)",
    )
    parser.add_argument("--teacher", help="an FP32 .pt of another size (same classes): adds the lever 'teacher'")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="N",
                        help="train every lever at each seed (toolchain qat --seed N): rows '<lever>-seed<N>' "
                             "(seed 0: '<lever>') and '<lever> (mean of K seeds)'")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="rerun levers that already have a report")
    parser.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples")
    parser.add_argument("--out", help="the table (.md) and .json; default: <project>/<prefix>-levers.md")
    return parser


def main(argv: list[str] | None = None) -> int:
    return report_errors(_run, build_parser().parse_args(argv))


def levers_from(extra: list[str], only: list[str] | None, teacher: str | None = None) -> dict[str, list[str]]:
    """``LEVERS`` (and ``teacher`` with a teacher file) with each ``NAME=FLAGS`` of ``extra`` added or
    replaced, restricted to ``only`` (default: ``HARD_CASE``, ``teacher`` and the ``extra`` ones).

    Raises:
        UsageError: A lever that is not ``NAME=FLAGS``, or an ``only`` name no lever has.
    """
    levers = dict(LEVERS)
    chosen = list(HARD_CASE)
    if teacher:
        levers["teacher"] = ["--teacher", teacher, "--train.loss.distill", "1000", "--train.loss.distill-features"]
        chosen.append("teacher")
    for item in extra:
        name, sep, flags = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--lever {item!r}: expected NAME=FLAGS, e.g. 'lr0-1e-4=--lr0 1e-4'")
        levers[name.strip()] = shlex.split(flags)
        chosen.append(name.strip())
    only = only or list(dict.fromkeys(chosen))
    if only:
        unknown = [n for n in only if n not in levers]
        if unknown:
            raise UsageError(f"--only {' '.join(unknown)}: no such lever; the levers are {', '.join(levers)}")
        levers = {n: levers[n] for n in only}
    return levers


def seeded(levers: dict[str, list[str]], seeds: list[int] | None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each lever at each of ``seeds`` (its flags and ``--seed N``; seed 0 keeps the lever's name, others
    are ``<lever>-seed<N>``), and each lever's mean row ``<lever> (mean of K seeds)`` to its seed rows.
    Without seeds, the levers as they are and no mean.

    Raises:
        UsageError: A seed given twice, or a lever that sets ``--seed`` itself.
    """
    if not seeds:
        return levers, {}
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {' '.join(map(str, seeds))}: a seed is given twice")
    rows, means = {}, {}
    for name, flags in levers.items():
        if "--seed" in flags:
            raise UsageError(f"lever {name} sets --seed itself ({shlex.join(flags)}); drop it or --seeds")
        members = [name if seed == 0 else f"{name}-seed{seed}" for seed in seeds]
        rows.update({row: [*flags, "--seed", str(seed)] for row, seed in zip(members, seeds)})
        if len(members) > 1:
            means[f"{name} (mean of {len(members)} seeds)"] = members
    return rows, means


def recorded_seed(run: Path) -> int | None:
    """The seed a finished run was trained with (``train.seed`` of its resolved ``qat.yaml``), if recorded."""
    record = run / "qat.yaml"
    if not record.is_file():
        return None
    return (read_yaml_mapping(record, "resolved QAT config").get("train") or {}).get("seed")


def run_lever(name: str, flags: list[str], args: argparse.Namespace) -> Path:
    """The run folder of one lever, trained (or resumed) by ``toolchain qat`` unless already reported.

    Raises:
        ToolchainError: ``toolchain qat`` failed, or the reported run was trained at another seed than
            ``flags``' ``--seed``.
    """
    run = Path(args.project) / name
    if (run / "report.json").is_file() and not args.force:
        if "--seed" in flags:
            want, got = int(flags[flags.index("--seed") + 1]), recorded_seed(run)
            if got is not None and got != want:
                raise ToolchainError(f"{run / 'qat.yaml'}: trained with seed {got}, but row {name} is seed {want}; "
                                     "use another --prefix, or --force to retrain it")  # fmt: skip
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


def compare(runs: dict[str, Path], data: str, resamples: int, means: dict[str, list[str]] | None = None) -> dict:
    """Every lever's QAT ONNX, the FP32 ONNX and the first lever's PTQ ONNX scored on one split; each
    lever against FP32 and against PTQ, and PTQ against FP32 (paired bootstrap on shared resamples),
    with the goal's verdict. A name of ``means`` is a row of the mean of its member runs (one lever over
    seeds: ``Resamples.add_mean``), with the members' spread of differences."""
    means = means or {}
    split = report_split(data)
    first = next(iter(runs))
    paths = {"FP32": runs[first] / "fp32.onnx", "PTQ INT8": runs[first] / "ptq.int8.onnx",
             **{n: r / "qat.int8.onnx" for n, r in runs.items()}}  # fmt: skip
    results = evaluate_onnx(paths, split)
    if results["FP32"].ap_small is None:
        raise ToolchainError(f"{data}: the {split.name} split has no small box (under 32x32 px): no small-object AP "
                             "to compare")  # fmt: skip
    names = [*runs, *means]
    pairs = [("PTQ INT8", "FP32")] + [(n, "FP32") for n in names] + [(n, "PTQ INT8") for n in names]
    diffs = differences(results, resamples, pairs=pairs, means=means)
    rows = {}
    for name in names:
        vs_fp32 = {m: d[f"{name} - FP32"] for m, d in diffs.items()}
        vs_ptq = {m: d[f"{name} - PTQ INT8"] for m, d in diffs.items()}
        if name in runs:
            scores = results[name].to_dict()
        else:  # the members' rows come first
            scores = {m: sum(rows[r]["results"][m] for r in means[name]) / len(means[name]) for m in diffs}
        rows[name] = {"flags": None, "results": scores, "vs_fp32": vs_fp32, "vs_ptq": vs_ptq,
                      "goal": goal_met(vs_fp32, vs_ptq)}  # fmt: skip
        if name in means:
            each = [rows[r]["vs_fp32"]["map50_95"].delta for r in means[name]]
            rows[name].update(members=means[name], spread=[min(each), max(each)])
    ptq = {"results": results["PTQ INT8"].to_dict(), "vs_fp32": {m: d["PTQ INT8 - FP32"] for m, d in diffs.items()}}
    return {"split": split.name, "images": results["FP32"].images, "optimistic": split.name == SELECTED_ON,
            "fp32": results["FP32"].to_dict(), "ptq": ptq, "first": first, "levers": rows}  # fmt: skip


def goal_met(vs_fp32: dict[str, Difference], vs_ptq: dict[str, Difference]) -> bool:
    """The issue's goal: mAP50-95 at most ``FP32_TOLERANCE`` below FP32 with an interval containing 0,
    above PTQ with an interval excluding 0, and AP small at most ``SMALL_TOLERANCE`` below FP32."""
    overall, small, gain = vs_fp32["map50_95"], vs_fp32["ap_small"], vs_ptq["map50_95"]
    near_fp32 = overall.delta >= -FP32_TOLERANCE and overall.low <= 0 <= overall.high
    return near_fp32 and gain.real and gain.delta > 0 and small.delta >= -SMALL_TOLERANCE


def markdown(table: dict, levers: dict[str, list[str]]) -> str:
    """The levers' table: metrics, differences to FP32 and to PTQ, the goal's verdict."""
    fp32, ptq = table["fp32"], table["ptq"]
    where = (f"{table['split']} split, {table['images']} images"
             + (" (the split best.pt was selected on: optimistic)" if table["optimistic"] else ""))  # fmt: skip
    lines = [
        f"QAT levers on the {where}; FP32: mAP50-95 {fp32['map50_95']:.4f}, AP small {_fmt(fp32['ap_small'])}.",
        f"Goal: mAP50-95 within {FP32_TOLERANCE * 100:.1f} points of FP32 (interval containing 0), above PTQ "
        f"(interval excluding 0), AP small within {SMALL_TOLERANCE * 100:.0f} point of FP32.",
        "",
        "| model | flags | mAP50-95 | AP small | mAP50-95 - FP32 | AP small - FP32 | mAP50-95 - PTQ | "
        "AP small - PTQ | goal |",
        "|" + "---|" * 9,
    ]
    p = ptq["vs_fp32"]
    lines.append(f"| PTQ INT8 | ({table['first']}'s calibration) | {ptq['results']['map50_95']:.4f} | "
                 f"{_fmt(ptq['results']['ap_small'])} | {p['map50_95'].describe()} | {p['ap_small'].describe()} "
                 "| - | - | - |")  # fmt: skip
    for name, row in table["levers"].items():
        res, fp, vp = row["results"], row["vs_fp32"], row["vs_ptq"]
        verdict = "met" if row["goal"] else "not met"
        if "members" in row:
            low, high = row["spread"]
            what = f"mean of {', '.join(row['members'])} (each vs FP32: {low:+.4f} to {high:+.4f})"
        else:
            what = shlex.join(levers[name]) or "(config)"
        cells = [name, what, f"{res['map50_95']:.4f}", _fmt(res["ap_small"]),
                 fp["map50_95"].describe(), fp["ap_small"].describe(), vp["map50_95"].describe(),
                 vp["ap_small"].describe(), verdict]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Paired bootstrap intervals (95%) over the same images: a difference is real only when its "
              "interval excludes 0."]  # fmt: skip
    if any("members" in row for row in table["levers"].values()):
        lines += ["A mean row's interval is the images' sampling of the seeds' mean; the seeds' own spread is "
                  "in its flags cell."]  # fmt: skip
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _run(args: argparse.Namespace) -> None:
    levers, means = seeded(levers_from(args.lever, args.only, args.teacher), args.seeds)
    runs = {name: run_lever(f"{args.prefix}-{name}", flags, args) for name, flags in levers.items()}
    table = compare(runs, args.data, args.resamples, means)
    text = markdown(table, levers)
    out = Path(args.out or Path(args.project) / f"{args.prefix}-levers.md")
    with atomic_path(out) as tmp:
        tmp.write_text(text + "\n")
    for name, row in table["levers"].items():
        row["flags"] = levers.get(name)
        row["vs_fp32"] = {m: d.to_dict() for m, d in row["vs_fp32"].items()}
        row["vs_ptq"] = {m: d.to_dict() for m, d in row["vs_ptq"].items()}
    table["ptq"]["vs_fp32"] = {m: d.to_dict() for m, d in table["ptq"]["vs_fp32"].items()}
    write_json(out.with_suffix(".json"), table)
    print(text)
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    sys.exit(main())
