"""OpenVINO INT8 against the best float on this CPU (bf16 where it has it): latency, where the time goes,
exactness, and throughput.

Variants: the FP32 ONNX with each precision hint, and each INT8 (QDQ) ONNX with each hint and each
way around OpenVINO's Concat -> FakeQuantize -> Convolution bug (``--workarounds``: the Maximum
no-op, a FakeQuantize on each Concat input, nothing). Latency at batch 1 is taken as ``make bench``
takes it: each variant in a process of its own, blocks rotated. For every variant: the per-layer
counters, and images/s with the THROUGHPUT hint at batch 1 and ``--max-batch``. With ``--data``, each
INT8 variant is checked against ONNX Runtime on the val split (raw outputs, and mAP with a paired
bootstrap interval); the verdict compares the fastest exact INT8 variant with the fastest FP32 one
(bf16 where the CPU has fast bf16).

``--remedies`` adds, for each INT8 variant, what the runner does where its INT8 self-check fails
(no VNNI: u8 x s8 pairs saturate in int16): ``auto`` (what every caller gets), ``float``, ``weights7``
and ``none`` (``deploy.runtime.openvino_int8``).

``--isa`` caps the instruction set oneDNN (OpenVINO's CPU kernels) may use, for the whole run and
every probe process (``ONEDNN_MAX_CPU_ISA``): ``AVX512_CORE_BF16`` on a CPU with AMX measures what a
CPU with AVX-512 VNNI and BF16 but no AMX tiles would get (INT8 by VNNI, bf16 by ``vdpbf16ps``).

Example:
    $ python -m benchmarks.openvino_int8 --fp32 runs/ptq/best.onnx --int8 runs/ptq/best.int8.onnx --data D
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from base.dataset import load_data_yaml, load_split
from base.errors import ToolchainError, report_errors
from base.fileio import atomic_path, write_json
from benchmarks import layers
from benchmarks.exactness import Reference
from benchmarks.measure import RowProcess, Schedule, other_load, time_rotated
from benchmarks.probe import ProbeConfig
from deploy.bench.timing import summarize
from deploy.cpu import describe, effective_isa
from deploy.runtime.onnxruntime import OnnxRuntimeRunner
from deploy.runtime.openvino import CONCAT_WORKAROUNDS, PRECISIONS
from deploy.runtime.openvino_int8 import REMEDIES

logger = logging.getLogger("openvino_int8")
ISAS = ("AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_FP16",
        "AVX512_CORE_AMX")
"""oneDNN's names for the instruction-set caps (``ONEDNN_MAX_CPU_ISA``) worth comparing for INT8 and bf16."""


def variants(a: argparse.Namespace) -> dict[str, ProbeConfig]:
    """Label to probe config: ``fp32/<hint>`` and ``<int8 stem>/<hint>/<workaround>[/<remedy>]``."""
    out = {f"fp32/{p}": ProbeConfig(str(a.fp32), "openvino", p, a.threads) for p in a.precisions}
    for model in a.int8:
        for p in a.precisions:
            for w in a.workarounds:
                for r in a.remedies:
                    label = f"{Path(model).stem}/{p}/{w}" + ("" if a.remedies == ["auto"] else f"/{r}")
                    out[label] = ProbeConfig(str(model), "openvino", p, a.threads, "LATENCY", w, r)
    return out


def time_latency(configs: dict[str, ProbeConfig], schedule: Schedule) -> dict[str, dict]:
    """Batch-1 latency of every variant, each in its own process, rotated blocks."""
    with contextlib.ExitStack() as stack:
        procs = {k: stack.enter_context(RowProcess(c, k)) for k, c in configs.items()}
        return {k: summarize(t) for k, t in time_rotated(procs, schedule).items()}


def time_throughput(configs: dict[str, ProbeConfig], max_batch: int, batches_per_block: int = 16) -> dict[str, dict]:
    """Images/s with the THROUGHPUT hint at batch 1 and ``max_batch`` (dynamic-batch models)."""
    out: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        procs = {k: stack.enter_context(RowProcess(ProbeConfig(**{**asdict(c), "hint": "THROUGHPUT"}), k))
                 for k, c in configs.items()}  # fmt: skip
        for k, p in procs.items():
            out[k] = {"streams": p.info["streams"], "requests": p.info["requests"]}
        for batch in sorted({1, max_batch}):
            group = {k: p for k, p in procs.items() if batch == 1 or p.info["input_shape"][0] is None}
            timed = time_rotated(group, Schedule(3, batches_per_block, 2), batch, "throughput", f"THROUGHPUT, b{batch}")
            for k, t in timed.items():
                out[k][f"batch{batch}_images_per_s"] = 1000 * batch / float(np.median(t))
    return out


def check_exactness(configs: dict[str, ProbeConfig], data: str, resamples: int) -> dict[str, dict]:
    """Every INT8 variant against ONNX Runtime on the val split (``benchmarks/exactness.py``)."""
    split = load_split(load_data_yaml(data), "val")
    references: dict[str, Reference] = {}
    out = {}
    for label, c in configs.items():
        if label.startswith("fp32/"):
            continue
        if c.model not in references:
            with OnnxRuntimeRunner(c.model) as ort:
                references[c.model] = Reference(ort, split, resamples=resamples)
        with c.open() as runner:
            out[label] = asdict(references[c.model].check(runner))
        logger.info("%s: mAP %.4f (ONNX Runtime %.4f)", label, out[label]["map50_95"], out[label]["reference_map50_95"])
    return out


def verdict(latency: dict[str, dict], exact: dict[str, dict] | None) -> dict:
    """The fastest INT8 variant that is exact (any, without ``--data``) against the fastest FP32 variant."""
    int8 = [k for k in latency if not k.startswith("fp32/") and (exact is None or exact[k]["exact"])]
    fp32 = min((k for k in latency if k.startswith("fp32/")), key=lambda k: latency[k]["p50"])
    if not int8:
        return {"fp32": fp32, "int8": None, "ratio": None}
    best = min(int8, key=lambda k: latency[k]["p50"])
    return {"fp32": fp32, "int8": best, "ratio": latency[fp32]["p50"] / latency[best]["p50"]}


def markdown(report: dict) -> str:
    """Latency, verdict, exactness, throughput and per-layer tables."""
    lat, ex, tp, v = report["latency_ms"], report.get("exactness"), report["throughput"], report["verdict"]
    lines = [f"# OpenVINO INT8 against float: {report['cpu']} (instructions: {report.get('isa', 'all')}), "
             f"OpenVINO {report['openvino']}", "", report.get("int8_note", ""), "",
             f"Input {report['input']}, {report['threads']} threads; batch-1 latency, each variant in its own "
             "process, blocks rotated (p50, p10-p90); other processes used "
             f"{report.get('other_cpu_share', float('nan')):.0%} of the CPU time meanwhile.", "",
             "| variant | p50 ms | p10-p90 | x vs fastest FP32 | mAP50-95 | ONNX Runtime | difference [95% CI] | "
             "max abs box / score | exact |", "|" + "---|" * 9]  # fmt: skip
    base = lat[v["fp32"]]["p50"]
    for k, s in lat.items():
        e = (ex or {}).get(k)
        acc = (f"{e['map50_95']:.4f} | {e['reference_map50_95']:.4f} | {e['difference']['delta']:+.4f} "
               f"[{e['difference']['low']:+.4f}, {e['difference']['high']:+.4f}] | "
               f"{e['max_abs_box']:.3g} / {e['max_abs_score']:.3g} | {'yes' if e['exact'] else 'NO'}"
               if e else "- | - | - | - | -")  # fmt: skip
        lines.append(f"| {k} | {s['p50']:.2f} | {s['p10']:.2f}-{s['p90']:.2f} | {base / s['p50']:.2f}x | {acc} |")
    ratio = f"{v['ratio']:.2f}x" if v["ratio"] else "-"
    lines += ["", f"Fastest {'exact ' if ex else ''}INT8 ({v['int8']}) against {v['fp32']}: **{ratio}** (goal 1.5x).",
              "", "Throughput, THROUGHPUT hint, every request in flight (img/s):", "",
              f"| variant | streams x requests | batch 1 | batch {report['max_batch']} |",
              "|---|---|---|---|"]  # fmt: skip
    for k, t in tp.items():
        big = t.get(f"batch{report['max_batch']}_images_per_s")
        lines.append(f"| {k} | {t['streams']} x {t['requests']} | {t['batch1_images_per_s']:.1f} | "
                     f"{'-' if big is None else f'{big:.1f}'} |")  # fmt: skip
    lines += ["", "Per-layer counters (PERF_COUNT), ms per batch-1 inference (nodes):", ""]
    return "\n".join(lines + layers.markdown(report["layers"])) + "\n"


def _run(a: argparse.Namespace) -> None:
    if a.isa:
        if "openvino" in sys.modules:  # oneDNN reads the cap once, when the library first looks at the CPU
            raise ToolchainError("--isa: OpenVINO was loaded before the cap could be set")
        os.environ["ONEDNN_MAX_CPU_ISA"] = a.isa  # inherited by every probe process

    for path in (a.fp32, *a.int8):
        if not Path(path).is_file():
            raise ToolchainError(f"{path}: model not found")
    for p in a.precisions:
        if p not in PRECISIONS:
            raise ToolchainError(f"--precisions: '{p}' is not one of {list(PRECISIONS)}")
    for w in a.workarounds:
        if w not in CONCAT_WORKAROUNDS:
            raise ToolchainError(f"--workarounds: '{w}' is not one of {list(CONCAT_WORKAROUNDS)}")
    for r in a.remedies:
        if r not in REMEDIES:
            raise ToolchainError(f"--remedies: '{r}' is not one of {list(REMEDIES)}")
    configs = variants(a)
    with other_load() as load:
        latency = time_latency(configs, Schedule.for_runs(a.runs, a.warmup))
    exact = check_exactness(configs, a.data, a.resamples) if a.data else None
    import openvino  # after ONEDNN_MAX_CPU_ISA is set (above): oneDNN reads the cap once

    with configs[f"fp32/{a.precisions[0]}"].open() as runner:
        shape = list(runner.input_shape)
    first_int8 = next(c for k, c in configs.items() if not k.startswith("fp32/"))
    with first_int8.open() as runner:
        note = runner.int8_note()
    report = {"cpu": describe(), "isa": a.isa or "all the CPU has", "kernel_isa": effective_isa(), "int8_note": note,
              "openvino": openvino.__version__.split("-")[0],
              "threads": a.threads, "input": shape, "max_batch": a.max_batch, **load,
              "latency_ms": latency, "verdict": verdict(latency, exact), "exactness": exact,
              "throughput": time_throughput(configs, a.max_batch),
              "layers": {k: layers.layer_profile(c.model, c.precision, a.threads, c.concat_workaround,
                                                 int8_remedy=c.int8_remedy)
                         for k, c in configs.items()}}  # fmt: skip
    text = markdown(report)
    print(text)
    write_json(a.out / "report.json", report)
    with atomic_path(a.out / "report.md") as tmp:
        tmp.write_text(text)
    print(f"report: {a.out / 'report.md'}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="openvino_int8", description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--fp32", type=Path, required=True, help="FP32 ONNX")
    p.add_argument("--int8", type=Path, nargs="+", required=True, help="QDQ ONNX of the same model and size")
    p.add_argument("--precisions", nargs="+", default=["f32", "bf16"], help="OpenVINO precision hints")
    p.add_argument("--workarounds", nargs="+", default=list(CONCAT_WORKAROUNDS), help="Concat workarounds to try")
    p.add_argument("--remedies", nargs="+", default=["auto"], help="INT8 without VNNI: " + ", ".join(REMEDIES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=100, help="timed runs of each variant, over 5 rotated blocks")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs at the start of each block")
    p.add_argument("--max-batch", type=int, default=8, help="THROUGHPUT-hint batch for dynamic-batch models")
    p.add_argument("--data", default=None, help="data.yaml: check every INT8 variant against ONNX Runtime on val")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the mAP intervals")
    p.add_argument("--isa", choices=ISAS, help="cap oneDNN's instruction set (ONEDNN_MAX_CPU_ISA), e.g. "
                   "AVX512_CORE_BF16: no AMX tiles; default: all the CPU has")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/openvino_int8"), help="report folder")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return report_errors(_run, a)


if __name__ == "__main__":
    sys.exit(main())
