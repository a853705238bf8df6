"""QAT training step against FP32 training step, and the QAT step per image at each world size.

1. FP32 and QAT steps on the same batches, interleaved A B A B, in one process. Both use the same
   ``Trainer`` code (optimizer, EMA, clipping, ultralytics' loss); the QAT model is the FP32 one with
   our quantizers, calibrated on a few batches. Data loading is done up front and excluded from both,
   so the ratio is the cost of fake quantization itself.
2. The QAT step as one rank of a job of ``W`` processes (gloo on this CPU, each process given
   ``cores / W`` threads or ``--threads``, ``--batch`` images each, DDP and the whole-batch loss
   normaliser as in ``toolchain qat`` under torchrun), for each ``W`` of ``--world-sizes``, one after
   the other in one run: seconds per image, speed-up and efficiency against the first ``W``. When the
   processes share the cores one process had alone, this measures the overhead of data parallelism,
   not a speed-up (that needs a device per process); ``--threads 1`` gives each process a core of
   its own, the nearest a CPU comes to one device per process.

What it showed (docs/results.md, "Distributed QAT on a 2-core CPU"): on road-signs at 384 px, 2 DDP
processes of 1 thread took 0.136 s per image against 0.153 s for one process of 2 threads (speed-up
1.12, efficiency 0.56): on one shared CPU, data parallelism is overhead, not a speed-up. Run by hand,
no make target.

Example:
    $ python -m benchmarks.qat_epoch --weights ../shared/models/road-signs-yolov8n-384.pt \
          --data ../shared/datasets/road-signs/data.yaml --imgsz 384 --world-sizes 1 2
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import os
import socket
import sys

import numpy as np
import torch

from base.errors import ToolchainError, report_errors
from deploy.bench.timing import time_calls
from toolchain.distributed.config import DistributedConfig
from toolchain.distributed.process import cpu_threads, init_distributed, shutdown
from toolchain.models.yolo import load_model_at
from toolchain.quantization.calibration import calibrated_model, calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.training.config import TrainConfig
from toolchain.training.loaders import build_train_loader
from toolchain.training.qat_trainer import QATConfig, QATTrainer
from toolchain.training.trainer import Trainer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qat_epoch", description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--imgsz", type=int, help="default: the size the weights were trained at")
    parser.add_argument("--batch", type=int, help="default: TrainConfig's")
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each (0: skip FP32 against QAT)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--world-sizes", type=int, nargs="*", default=[1, 2],
                        help="processes of the QAT step per image measurement (none: skip it)")  # fmt: skip
    parser.add_argument("--world-steps", type=int, default=6, help="timed steps at each world size")
    parser.add_argument("--threads", type=int, default=0, help="threads per process at each world size (0: cores / W)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return report_errors(_run, args)


def _run(args: argparse.Namespace) -> None:
    if args.steps:
        _measure(args)
    if args.world_sizes:
        _measure_world_sizes(args)


def _measure(args: argparse.Namespace) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    fp32, imgsz = load_model_at(args.weights, args.imgsz)
    cfg = TrainConfig(data=args.data, imgsz=imgsz, workers=0, **({"batch": args.batch} if args.batch else {}))
    qat, _ = calibrated_model(fp32, QuantConfig(), calibration_batches(args.data, imgsz, 2 * cfg.batch, cfg.batch))
    trainers = {"fp32": Trainer(fp32, cfg), "qat": QATTrainer(qat, cfg, QATConfig())}
    loader = build_train_loader(cfg, 32)
    batches = list(itertools.islice(itertools.cycle(loader), args.steps + args.warmup))
    for t in trainers.values():
        t.prepare_epoch(0)
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for i, batch in enumerate(batches):
        for name, trainer in trainers.items():
            ms = time_calls(lambda trainer=trainer, batch=batch: trainer.train_step(copy.copy(batch)), 1)
            if i >= args.warmup:
                times[name].append(ms[0] / 1e3)
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _qat_steps_as_rank(rank: int, world: int, port: int, args: argparse.Namespace, results) -> None:
    """One process of a ``world``-process job (the environment torchrun gives): QAT steps, timed on rank 0."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), YOLO_OFFLINE="1")  # fmt: skip
    logging.basicConfig(level=logging.WARNING)
    ctx = init_distributed(DistributedConfig(timeout_s=600), "cpu")
    try:
        torch.set_num_threads(args.threads or cpu_threads(ctx))
        fp32, imgsz = load_model_at(args.weights, args.imgsz)
        cfg = TrainConfig(data=args.data, imgsz=imgsz, workers=0, **({"batch": args.batch} if args.batch else {}))
        qat, _ = calibrated_model(fp32, QuantConfig(), calibration_batches(args.data, imgsz, 2 * cfg.batch, cfg.batch))
        trainer = QATTrainer(qat, cfg, QATConfig(), dist=ctx)
        trainer.distribute()  # DDP, the whole-batch loss, as in `toolchain qat` under torchrun
        loader = build_train_loader(cfg, 32, ctx)
        steps = iter(list(itertools.islice(itertools.cycle(loader), args.world_steps + args.warmup)))  # loaded up front
        trainer.prepare_epoch(0)
        timed = time_calls(lambda: trainer.train_step(next(steps)), args.world_steps, args.warmup)
        times = [ms / 1e3 for ms in timed]
        if ctx.is_main:
            results.put({"world": world, "batch": cfg.batch, "imgsz": imgsz, "threads": torch.get_num_threads(),
                         "step": float(np.median(times)), "min": min(times), "max": max(times)})  # fmt: skip
    finally:
        shutdown(ctx)


def _measure_world_sizes(args: argparse.Namespace) -> None:
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    rows = []
    for world in args.world_sizes:
        results = context.SimpleQueue()
        mp.start_processes(_qat_steps_as_rank, (world, _free_port(), args, results), nprocs=world,
                           start_method="spawn")  # fmt: skip
        if results.empty():
            raise ToolchainError(f"world size {world}: rank 0 returned no timing")
        rows.append(results.get())
    base = rows[0]["step"] / (rows[0]["world"] * rows[0]["batch"])
    print(f"\nQAT step per image, batch {rows[0]['batch']} per process at {rows[0]['imgsz']} px, gloo, "
          f"{os.cpu_count()} CPU cores, {args.world_steps} timed steps each:")  # fmt: skip
    print("  processes  threads/process  step median (min-max)     per image  speed-up  efficiency")
    for r in rows:
        per_image = r["step"] / (r["world"] * r["batch"])
        speedup = base / per_image
        efficiency = speedup * rows[0]["world"] / r["world"]
        print(f"  {r['world']:>9}  {r['threads']:>15}  {r['step']:6.2f} s ({r['min']:.2f}-{r['max']:.2f})"
              f"  {per_image:9.3f} s  {speedup:8.2f}  {efficiency:10.2f}")  # fmt: skip
    print("Speed-up: seconds per image at the first world size over this one's; efficiency: speed-up per process.")
    if not args.threads:
        print("The processes split the cores one process had alone: the ideal here is speed-up 1, so this")
        print("measures the overhead of data parallelism (all-reduce, loss normaliser, thread split), not a")
        print("speed-up; with one GPU per process the ideal is speed-up = processes, efficiency 1.")
    else:
        print(f"Each process has {args.threads} thread(s): with a core each, the ideal is efficiency 1; on a")
        print("shared or loaded machine the processes also compete with each other and with other work.")


if __name__ == "__main__":
    sys.exit(main())
