"""One rank of the distributed tests, started by ``test_ddp.py`` (as torchrun would: RANK, WORLD_SIZE...).

    python ddp_worker.py step WORKDIR    one QAT step on this rank's shard; writes WORKDIR/rank<r>.pt
    python ddp_worker.py train WORKDIR   QAT steps until killed; prints "step N"
    python ddp_worker.py adapters WORKDIR  one QATTrainer step distilled through feature adapters from
                                         WORKDIR/adapters.pt; writes WORKDIR/adapters<r>.pt

``WORKDIR/inputs.pt`` (written by the test) holds the tiny model with quantizers placed but not
calibrated, the calibration batch and the training batch. Rank 0 calibrates; the ranges are broadcast.
``DDP_WORKER_STOP=RANK:STEP:SIGNAL`` makes that rank send itself KILL or STOP at that step (it prints
the time first); ``DDP_WORKER_TIMEOUT`` is the process-group timeout in seconds (60 by default).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from base.errors import report_errors
from toolchain.distributed.config import DistributedConfig
from toolchain.distributed.loss import GlobalTargetNormalization, backward_scale
from toolchain.distributed.model import (
    broadcast_quantizer_ranges,
    differing_tensors,
    quantizer_ranges,
    set_lsq_global_batch,
    wrap_ddp,
)
from toolchain.distributed.process import (
    average_over_ranks,
    collective_errors,
    init_distributed,
    main_first,
    on_main,
    shutdown,
)
from toolchain.quantization.calibration import calibrate
from toolchain.training.losses import LossConfig, detection_criterion

LR, MOMENTUM, CLIP = 0.01, 0.9, 10.0


def prepare_for_qat(model: nn.Module) -> nn.Module:
    """Train mode with BatchNorm frozen (QATTrainer's default from epoch 0) and the DFL conv fixed."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    for name, p in model.named_parameters():
        p.requires_grad_(".dfl." not in name)
    return model


def shard(batch: dict, start: int, stop: int) -> dict:
    """Images ``start:stop`` of a detection batch, with their targets re-indexed."""
    keep = (batch["batch_idx"] >= start) & (batch["batch_idx"] < stop)
    return {"img": batch["img"][start:stop], "batch_idx": batch["batch_idx"][keep] - start,
            "cls": batch["cls"][keep], "bboxes": batch["bboxes"][keep]}  # fmt: skip


def qat_step(model, criterion, optimizer, batch: dict, scale: float = 1.0) -> torch.Tensor:
    """Forward, loss, backward (times ``scale``), clip, SGD step; returns the detached loss."""
    loss, _ = criterion(model(batch["img"]), batch)
    optimizer.zero_grad(set_to_none=True)
    (loss.sum() * scale).backward()
    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], CLIP)
    optimizer.step()
    return loss.sum().detach()


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=LR, momentum=MOMENTUM)


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _setup(workdir: Path):
    ctx = init_distributed(DistributedConfig(timeout_s=float(os.environ.get("DDP_WORKER_TIMEOUT", "60"))), "cpu")
    torch.set_num_threads(1)
    inputs = torch.load(workdir / "inputs.pt", weights_only=False)
    model = inputs["model"]
    if ctx.is_main:  # calibration runs once
        calibrate(model, [inputs["calib"].numpy()])
    broadcast_quantizer_ranges(model, ctx)
    set_lsq_global_batch(model, ctx.world_size)
    prepare_for_qat(model)
    per_rank = inputs["batch"]["img"].shape[0] // ctx.world_size
    batch = shard(inputs["batch"], ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
    return ctx, model, batch


def run_step(workdir: Path) -> None:
    ctx, model, batch = _setup(workdir)
    ranges_before = quantizer_ranges(model)
    ddp = wrap_ddp(model, ctx, find_unused_parameters=False, broadcast_buffers=False)
    criterion = GlobalTargetNormalization(detection_criterion(model, LossConfig()), ctx)
    optimizer = sgd(model)
    loss = qat_step(ddp, criterion, optimizer, batch, backward_scale(ctx))
    dist.all_reduce(loss)  # the ranks' shares add up to the whole batch's loss
    out = {
        "loss": loss,
        "grads": _grads(model),
        "ranges_before": ranges_before,
        "ranges_after": quantizer_ranges(model),
    }
    qat_step(ddp, criterion, optimizer, batch, backward_scale(ctx))  # a second step: no unused-parameter error
    out["differ_frozen_bn"] = differing_tensors(model, ctx)
    out["from_main"] = on_main(ctx, "a rank-0-only job", lambda: f"made on rank {ctx.rank}")
    out["mean"] = average_over_ranks({"rank": float(ctx.rank), "one": 1.0}, ctx)
    with main_first(ctx, "cache"):
        if ctx.is_main:
            (workdir / "cache").write_text("written by rank 0")
        out["cache"] = (workdir / "cache").read_text()
    for m in model.modules():  # BatchNorm updating: each rank's statistics drift to its own shard's
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    qat_step(ddp, criterion, optimizer, batch, backward_scale(ctx))
    out["differ_training_bn"] = differing_tensors(model, ctx)
    torch.save(out, workdir / f"rank{ctx.rank}.pt")
    shutdown(ctx)


def run_training(workdir: Path) -> None:
    ctx, model, batch = _setup(workdir)
    ddp = wrap_ddp(model, ctx)
    criterion = GlobalTargetNormalization(detection_criterion(model, LossConfig()), ctx)
    optimizer = sgd(model)
    stop_rank, stop_step, stop_signal = (os.environ.get("DDP_WORKER_STOP", "-1:-1:KILL").split(":") + ["", ""])[:3]
    for step in range(100_000):
        if ctx.rank == int(stop_rank) and step == int(stop_step):
            print(f"rank {ctx.rank}: SIG{stop_signal} at step {step}, t={time.time():.3f}", flush=True)
            os.kill(os.getpid(), getattr(signal, f"SIG{stop_signal}"))
        with collective_errors(ctx, f"QAT step {step}"):
            qat_step(ddp, criterion, optimizer, batch, backward_scale(ctx))
        print(f"rank {ctx.rank}: step {step}", flush=True)


def adapter_step(workdir: Path, ctx=None) -> dict:
    """One ``QATTrainer.train_step`` of a student distilled from a wider teacher (1x1 feature adapters
    outside the DDP model) on this rank's shard of ``adapters.pt``'s batch (the whole batch in one process).
    Each rank seeds its own adapter init: only the trainer's broadcast makes them rank 0's."""
    from toolchain.quantization.config import QuantConfig  # noqa: F401  (the pickled student's quantizers)
    from toolchain.training.config import TrainConfig
    from toolchain.training.qat_trainer import QATConfig, QATTrainer

    inputs = torch.load(workdir / "adapters.pt", weights_only=False)
    rank, world = (ctx.rank, ctx.world_size) if ctx else (0, 1)
    cfg = TrainConfig(data=inputs["data"], imgsz=64, epochs=1, batch=4 // world, workers=0, ema_decay=0,
                      grad_clip=0, lr0=0.05, optimizer="SGD", threads=1,
                      loss=LossConfig(distill=1000.0, distill_features=True))  # fmt: skip
    torch.manual_seed(rank)
    trainer = QATTrainer(inputs["student"], cfg, QATConfig(), inputs["teacher"], dist=ctx, teacher_name="s.pt")
    trainer.distribute()
    trainer.prepare_epoch(0)
    per_rank = inputs["batch"]["img"].shape[0] // world
    trainer.train_step(shard(inputs["batch"], rank * per_rank, (rank + 1) * per_rank))
    adapters = list(trainer.distiller.parameters())
    out = {"grads": [p.grad.clone() for p in adapters], "after": [p.detach().clone() for p in adapters]}
    if ctx:
        trainer._check_ranks_agree(0)  # raises when a rank's adapters (or model) differ
    return out


def run_adapters(workdir: Path) -> None:
    ctx = init_distributed(DistributedConfig(timeout_s=float(os.environ.get("DDP_WORKER_TIMEOUT", "60"))), "cpu")
    torch.set_num_threads(1)
    torch.save(adapter_step(workdir, ctx), workdir / f"adapters{ctx.rank}.pt")
    shutdown(ctx)


if __name__ == "__main__":
    mode, workdir = sys.argv[1], Path(sys.argv[2])
    sys.exit(report_errors({"step": run_step, "train": run_training, "adapters": run_adapters}[mode], workdir))
