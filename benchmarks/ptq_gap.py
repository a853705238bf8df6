"""Does PTQ lose on this data? An FP32 ONNX and its INT8 QDQ ONNX scored through ONNX Runtime on a
data.yaml's ``test`` split (``val`` when it has none), with the paired bootstrap interval of INT8 minus
FP32 for mAP50-95 and AP small, and the count of images and small boxes it rests on.

The first look at a candidate hard case, before any QAT: ``toolchain ptq --fp32`` writes both files.

Example:
    $ python -m toolchain.cli ptq --weights ../shared/models/road-signs-yolov8n-384.pt \\
          --data data/hard/road-signs-k3/data.yaml --out runs/hard/look-k3/rs.int8.onnx --fp32
    $ python -m benchmarks.ptq_gap --fp32 runs/hard/look-k3/rs.onnx --int8 runs/hard/look-k3/rs.int8.onnx \\
          --data data/hard/road-signs-k3/data.yaml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from base.errors import report_errors
from base.fileio import write_json
from toolchain.training.qat_report import differences, evaluate_onnx, report_split, table

SMALL = 32
"""COCO's small boxes: sqrt(area) under 32 px."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ptq_gap", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--fp32", required=True, help="the FP32 ONNX")
    parser.add_argument("--int8", required=True, help="the INT8 QDQ ONNX of the same model")
    parser.add_argument("--data", required=True, help="data.yaml (its test split, else val)")
    parser.add_argument("--resamples", type=int, default=1000, help="paired bootstrap resamples")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    return report_errors(_run, build_parser().parse_args(argv))


def ptq_gap(fp32: Path, int8: Path, data: str, resamples: int) -> dict:
    """Both models' metrics on the report split, INT8 - FP32 with intervals, images and small boxes."""
    split = report_split(data)
    results = evaluate_onnx({"FP32": fp32, "PTQ INT8": int8}, split)
    sides = np.concatenate([np.sqrt(np.prod(r.boxes[:, 2:] - r.boxes[:, :2], 1)) for r in split.images] or [[]])
    diffs = differences(results, resamples, pairs=[("PTQ INT8", "FP32")])
    return {"split": split.name, "images": len(split.images), "boxes": int(len(sides)),
            "small_boxes": int((sides < SMALL).sum()), "table": table(results),
            "differences": {m: d["PTQ INT8 - FP32"] for m, d in diffs.items()}}  # fmt: skip


def _run(args: argparse.Namespace) -> None:
    gap = ptq_gap(Path(args.fp32), Path(args.int8), args.data, args.resamples)
    print(f"{args.data}: {gap['split']} split, {gap['images']} images, {gap['boxes']} boxes "
          f"({gap['small_boxes']} small, under {SMALL} px)")  # fmt: skip
    print(gap["table"])
    for metric, d in gap["differences"].items():
        print(f"PTQ INT8 - FP32, {metric}: {d.describe()}")
    if args.json:
        write_json(args.json, {**gap, "differences": {m: d.to_dict() for m, d in gap["differences"].items()}})


if __name__ == "__main__":
    sys.exit(main())
