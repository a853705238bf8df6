"""Does a row measure the same in the suite as alone? One pair of models, both ways, in one run.

Rows: the FP32 and INT8 ONNX on OpenVINO (f32 hint, and bf16 where the CPU has it) and on ONNX
Runtime, as ``make bench`` has them. The two ways take turns round by round, so drift in the
machine's state falls on both alike: each round times every row alone (a process of its own, no
other row loaded), then the suite (``make bench``'s method: a process per row, all loaded, one
block each in turn); the row order rotates each round. It exits 1 when a row's suite-to-alone ratio,
paired by round (drift between rounds cancels), is more than ``--tolerance`` from 1.
``--round-robin`` also times the former method (every row in one process, one run of each in turn)
for comparison.

What it is for: the check that ``make bench``'s method (``benchmarks/measure.py``) reads a row the
same in the suite as alone, where the former round-robin read FP32 on OpenVINO up to 2.5x slow
(docs/results.md, "Benchmark method"). Run by hand, no make target.

Example:
    $ python -m benchmarks.agreement --fp32 fp32.onnx --int8 int8.onnx --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from base.errors import ToolchainError, report_errors
from base.fileio import write_json
from benchmarks.measure import InProcess, Row, RowProcess, Schedule, other_load, time_rotated
from benchmarks.suite import cpu_has_bf16, environment
from deploy.bench.timing import summarize

logger = logging.getLogger("agreement")


def pair_rows(fp32: str, int8: str, bf16: bool) -> list[Row]:
    """The rows of one FP32/INT8 pair on the CPU backends."""
    rows = [Row("FP32", "openvino", fp32), Row("INT8", "openvino", int8)]
    if bf16:
        rows += [Row("FP32", "openvino", fp32, "bf16"), Row("INT8", "openvino", int8, "bf16")]
    return rows + [Row("FP32", "onnxruntime", fp32), Row("INT8", "onnxruntime", int8)]


def time_both_ways(rows: list[Row], threads: int | None, schedule: Schedule) -> tuple[dict, dict]:
    """Blocks of milliseconds of each row alone and in the suite (one block per round each way).

    Each round: every row alone (a process of its own, started for its block, no other row loaded),
    then the suite (a process per row, all loaded, one block each). The row order rotates each round.
    """
    alone: dict[str, list[list[float]]] = {r.name: [] for r in rows}
    suite: dict[str, list[list[float]]] = {r.name: [] for r in rows}
    one_block = Schedule(rounds=1, runs=schedule.runs, warmup=schedule.warmup, settle_s=schedule.settle_s)
    for k in tqdm(range(schedule.rounds), desc="alone, then suite", unit="round"):
        order = rows[k % len(rows) :] + rows[: k % len(rows)]
        for r in order:
            with RowProcess(r.probe(threads), r.name) as proc:
                alone[r.name].append(time_rotated({r.name: proc}, one_block)[r.name])
        with contextlib.ExitStack() as stack:
            procs = {r.name: stack.enter_context(RowProcess(r.probe(threads), r.name)) for r in order}
            for name, times in time_rotated(procs, one_block).items():
                suite[name].append(times)
    return alone, suite


def time_round_robin(rows: list[Row], threads: int | None, runs: int, warmup: int) -> dict[str, list[float]]:
    """The former method: every row in this process, one run of each in turn."""
    with contextlib.ExitStack() as stack:
        timers = {r.name: InProcess(stack.enter_context(r.open(threads))) for r in rows}
        for t in timers.values():
            t.block(0, warmup)
        return time_rotated(timers, Schedule(rounds=runs, runs=1, warmup=0, settle_s=0), desc="round-robin")


def compare(alone: dict[str, list[list[float]]], suite: dict[str, list[list[float]]], tolerance: float):
    """Per row: p50 alone and in the suite, and the suite-to-alone ratio paired by round (the median over
    rounds of the two block medians' ratio, so drift between rounds cancels); within ``tolerance`` or not.

    Returns:
        One dict per row, and whether every row agrees.
    """
    lines, ok = [], True
    for name in alone:
        a, s = (summarize([t for block in ways[name] for t in block])["p50"] for ways in (alone, suite))
        paired = float(np.median([np.median(sb) / np.median(ab) for ab, sb in zip(alone[name], suite[name])]))
        agree = abs(paired - 1) <= tolerance
        ok &= agree
        lines.append({"row": name, "alone_p50": a, "suite_p50": s, "p50_ratio": s / a, "paired_ratio": paired,
                      "rounds": len(alone[name]), "agree": agree})  # fmt: skip
    return lines, ok


def table(lines: list[dict], round_robin: dict[str, list[float]] | None, tolerance: float) -> str:
    """The comparison as markdown, with the former round-robin's p50 where it was timed."""
    head = ["row", "alone p50 ms", "suite p50 ms", "suite / alone (p50s)", "suite / alone (paired by round)"]
    head += ["former round-robin p50 ms", "round-robin / alone"] if round_robin else []
    head.append(f"within {tolerance:.0%}")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for x in lines:
        cells = [
            x["row"],
            f"{x['alone_p50']:.2f}",
            f"{x['suite_p50']:.2f}",
            f"{x['p50_ratio']:.3f}",
            f"{x['paired_ratio']:.3f}",
        ]
        if round_robin:
            rr = float(np.median(round_robin[x["row"]]))
            cells += [f"{rr:.2f}", f"{rr / x['alone_p50']:.3f}"]
        out.append("| " + " | ".join(cells + ["yes" if x["agree"] else "NO"]) + " |")
    return "\n".join(out)


def _run(a: argparse.Namespace) -> int:
    for path in (a.fp32, a.int8):
        if not Path(path).is_file():
            raise ToolchainError(f"{path}: model not found")
    rows = pair_rows(a.fp32, a.int8, cpu_has_bf16())
    with other_load() as load:
        alone, suite = time_both_ways(rows, a.threads, Schedule.for_runs(a.runs, a.warmup, rounds=a.rounds))
    rr = time_round_robin(rows, a.threads, a.runs, a.warmup) if a.round_robin else None
    lines, ok = compare(alone, suite, a.tolerance)
    print(table(lines, rr, a.tolerance))
    print(f"suite and alone agree within {a.tolerance:.0%} for every row" if ok else "DISAGREE: see the rows marked NO")
    share = load.get("other_cpu_share")
    if share is not None:
        print(
            f"other processes used {share:.0%} of this machine's CPU time meanwhile"
            + (": it was busy, so the timings are not conclusive; rerun on a quiet machine" if share > 0.05 else "")
        )
    if a.json:
        write_json(a.json, {"environment": environment(), "threads": a.threads, "runs": a.runs, "rows": lines,
                            "round_robin": {k: summarize(v) for k, v in rr.items()} if rr else None,
                            "agree": ok, **load, "blocks": {"alone": alone, "suite": suite}})  # fmt: skip
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agreement", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--fp32", required=True, help="FP32 ONNX")
    p.add_argument("--int8", required=True, help="QDQ ONNX of the same model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=100, help="timed runs of each row, each way")
    p.add_argument("--rounds", type=int, default=10, help="rounds; each times one block of every row both ways")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs at the start of each block")
    p.add_argument("--tolerance", type=float, default=0.10, help="largest allowed |suite / alone - 1|")
    p.add_argument("--round-robin", action="store_true", help="also time the former one-process round-robin")
    p.add_argument("--json", type=Path, default=None, help="write the comparison here")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return report_errors(_run, a)


if __name__ == "__main__":
    sys.exit(main())
