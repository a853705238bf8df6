"""QAT training step against FP32 training step, same batches, interleaved A B A B, in one process.

Both use the same ``Trainer`` code (optimizer, EMA, clipping, ultralytics' loss); the QAT model is the
FP32 one with our quantizers, calibrated on a few batches. Data loading is done up front and excluded
from both, so the ratio is the cost of fake quantization itself.

Example:
    $ python -m benchmarks.qat_epoch --weights ../shared/models/road-signs-yolov8n-384.pt \
          --data ../shared/datasets/road-signs/data.yaml --imgsz 384
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import os
import sys
import time

import numpy as np
import torch

from deploy.errors import report_errors
from toolchain.models.yolo import load_model_at
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.ptq import calibration_batches, ptq
from toolchain.training.qat_trainer import QATConfig, QATTrainer
from toolchain.training.trainer import TrainConfig, Trainer, build_train_loader


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--imgsz", type=int, help="default: the size the weights were trained at")
    parser.add_argument("--batch", type=int, help="default: TrainConfig's")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return report_errors(_measure, args)


def _measure(args: argparse.Namespace) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    fp32, imgsz = load_model_at(args.weights, args.imgsz)
    cfg = TrainConfig(data=args.data, imgsz=imgsz, workers=0, **({"batch": args.batch} if args.batch else {}))
    qat, _ = ptq(fp32, QuantConfig(), calibration_batches(args.data, imgsz, 2 * cfg.batch, cfg.batch))
    trainers = {"fp32": Trainer(fp32, cfg), "qat": QATTrainer(qat, cfg, QATConfig())}
    loader = build_train_loader(cfg, 32)
    batches = list(itertools.islice(itertools.cycle(loader), args.steps + args.warmup))
    for t in trainers.values():
        t.prepare_epoch(0)
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for i, batch in enumerate(batches):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_step(copy.copy(batch))
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    per_epoch = len(loader)
    fp, q = np.median(times["fp32"]), np.median(times["qat"])
    print(
        f"train step, batch {cfg.batch} at {imgsz} px, {torch.get_num_threads()} threads, "
        f"{args.steps} interleaved steps each (data loading excluded):"
    )
    for name, t in times.items():
        t = np.array(t)
        print(
            f"  {name:<5} median {np.median(t):.3f} s  (min {t.min():.3f}, max {t.max():.3f})  "
            f"-> {np.median(t) * per_epoch:.0f} s per epoch of {per_epoch} steps"
        )
    print(f"QAT step / FP32 step: {q / fp:.2f}x (target <= 2x)")


if __name__ == "__main__":
    sys.exit(main())
