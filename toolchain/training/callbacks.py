"""Trainer callbacks: checkpoints, early stopping, results CSV, progressive quantization, and the
per-layer quantization error (SQNR) monitor.

Under torchrun, the trainer runs them on rank 0 only (files, logs, the decision to stop), except
``ProgressiveQuantization``, which changes the model and so runs on every rank (``every_rank``).
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np
import torch

from base.errors import ToolchainError
from base.fileio import atomic_path
from toolchain.models.checkpoint import save_checkpoint
from toolchain.plots import bar_chart
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantized_model import quantization_disabled, quantizers
from toolchain.training.trainer import Callback, Trainer

logger = logging.getLogger(__name__)


def every_quantizer_on(trainer: Trainer) -> bool:
    """Whether the epoch was trained and validated with every quantizer on (the model and the EMA);
    a float model has none off."""
    return all(q.enabled for model in (trainer.model, trainer.eval_model) for q in quantizers(model))


def _counted(trainer: Trainer, epoch: int, what: str) -> bool:
    """Whether ``epoch`` counts for ``what`` (the QAT epochs do, float and partly quantized ones do not)."""
    if every_quantizer_on(trainer):
        return True
    logger.info("Epoch %d: some quantizers are still off; %s counts the fully quantized epochs only", epoch + 1, what)
    return False


class ModelCheckpoint(Callback):
    """``weights/last.pt`` after every epoch and ``weights/best.pt`` at the best val mAP50-95; atomic
    writes, each with the run's image size and resolved ``config``.

    ``best.pt`` is taken only from epochs with every quantizer on: an epoch before the last progressive
    stage (or in the qat schedule's float phase) would export a QDQ ONNX without Q/DQ on the convs
    still off, and its mAP is not that of the INT8 model.
    """

    def __init__(self, folder: str | Path, config: dict | None = None) -> None:
        self.folder, self.config = Path(folder), config

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict) -> None:
        fitness = metrics["map50_95"]
        counted = _counted(trainer, epoch, "best.pt")
        improved = counted and (trainer.best_fitness is None or fitness > trainer.best_fitness)
        if improved:
            trainer.best_fitness = fitness
        state = trainer.state(epoch)
        model = state.pop("model")
        save_checkpoint(self.folder / "last.pt", model, trainer.cfg.imgsz, self.config, **state)
        if improved:
            save_checkpoint(self.folder / "best.pt", trainer.eval_model, trainer.cfg.imgsz, self.config,
                            epoch=epoch, fitness=fitness)  # fmt: skip
            logger.info("New best mAP50-95 %.4f at epoch %d", fitness, epoch + 1)


class EarlyStopping(Callback):
    """Stop when val mAP50-95 has not improved for ``patience`` epochs with every quantizer on (the
    float epochs' mAP is not one the quantized epochs must beat)."""

    def __init__(self, patience: int) -> None:
        self.patience, self.best, self.bad = patience, -1.0, 0

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict) -> None:
        if not _counted(trainer, epoch, "early stopping"):
            return
        if metrics["map50_95"] > self.best:
            self.best, self.bad = metrics["map50_95"], 0
        else:
            self.bad += 1
            trainer.stop = trainer.stop or self.bad >= self.patience


class ResultsCSV(Callback):
    """One row of metrics per epoch in ``results.csv`` (rewritten whole, atomically)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict) -> None:
        keys = list(dict.fromkeys(k for row in trainer.history for k in row))
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(trainer.history)


def _quant_convs(model: torch.nn.Module) -> list[tuple[str, QuantConv2d]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantConv2d)]


class ProgressiveQuantization(Callback):
    """Enable quantizers stage by stage: ``stages`` maps a start epoch to a regex of module names.

    Example: ``{0: r"model\\.[0-9]\\.", 1: r"model\\.1[0-9]\\.", 2: r"model\\.2[0-9]\\."}`` turns on the
    backbone first, the neck one epoch later, the head after that. Quantizers not yet due compute in float.
    It changes the model, so under torchrun it runs on every rank.
    """

    every_rank = True

    def __init__(self, stages: dict[int, str]) -> None:
        self.stages = {int(k): re.compile(v) for k, v in stages.items()}

    def on_fit_start(self, trainer: Trainer) -> None:
        """Refuse stages that leave a quantized conv off for good (its Q/DQ would be missing from the ONNX).

        Raises:
            ToolchainError: Naming the convs no stage matches.
        """
        patterns = list(self.stages.values())
        never = [name for name, _ in _quant_convs(trainer.model) if not any(p.match(name) for p in patterns)]
        if never:
            raise ToolchainError(
                f"qat.progressive: no stage matches {len(never)} quantized conv(s), e.g. {', '.join(never[:3])}; "
                "they would never be quantized: end with a stage that matches them (e.g. '.*')"
            )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        due = [p for start, p in self.stages.items() if start <= epoch]
        convs = _quant_convs(trainer.model)
        on = {name: any(p.match(name) for p in due) for name, _ in convs}
        shared_on: dict[int, bool] = {}  # a shared input quantizer is on once any of its readers is due
        for name, conv in convs:
            conv.weight_quantizer.enabled = on[name]
            shared_on[id(conv.input_quantizer)] = shared_on.get(id(conv.input_quantizer), False) or on[name]
        for _, conv in convs:
            conv.input_quantizer.enabled = shared_on[id(conv.input_quantizer)]
        quantized = sum(on.values())
        logger.info("Progressive quantization, epoch %d: %d of %d convs quantized", epoch + 1, quantized, len(on))


class TensorBoardLogger(Callback):
    """Losses, learning rate, mAP and (after ``QuantizationErrorMonitor``) per-layer SQNR, per epoch."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.writer = None

    def on_fit_start(self, trainer: Trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            logger.warning("tensorboard is not installed (pip install tensorboard); TensorBoard logging is off")
            return
        self.writer = SummaryWriter(str(self.folder))

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict) -> None:
        if self.writer is None:
            return
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(f"train/{key}" if key.endswith(("loss", "penalty", "distill")) else key,
                                       value, epoch + 1)  # fmt: skip
        for layer, db in getattr(trainer, "sqnr", {}).items():
            self.writer.add_scalar(f"sqnr_db/{layer}", db, epoch + 1)
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()


def sqnr_per_layer(model: torch.nn.Module, batch: torch.Tensor) -> dict[str, float]:
    """SQNR (dB) of each quantized conv's output against the same conv in float, on one batch."""
    outputs: dict[str, list[torch.Tensor]] = {}
    hooks = [
        conv.register_forward_hook(lambda m, i, o, n=name: outputs.setdefault(n, []).append(o.detach()))
        for name, conv in _quant_convs(model)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(batch)
            with quantization_disabled(model):
                model(batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out = {}
    for name, (quant, ref) in outputs.items():
        noise = (quant - ref).pow(2).mean().item()
        out[name] = 10 * np.log10(ref.pow(2).mean().item() / max(noise, 1e-20))
    return out


class QuantizationErrorMonitor(Callback):
    """Per-layer SQNR of fake-quant against float on a fixed batch, each epoch: CSV and a bar chart."""

    def __init__(self, batch: torch.Tensor, folder: str | Path) -> None:
        self.batch, self.folder = batch, Path(folder)
        self.rows: list[dict] = []

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict) -> None:
        sqnr = sqnr_per_layer(trainer.model, self.batch.to(trainer.device))
        self.rows.append({"epoch": epoch + 1, **sqnr})
        with atomic_path(self.folder / "sqnr.csv") as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        metrics["sqnr_min_db"] = min(sqnr.values())
        trainer.sqnr = sqnr
        self._plot(sqnr)

    def _plot(self, sqnr: dict[str, float]) -> None:
        bar_chart(self.folder / "sqnr.png", list(sqnr), list(sqnr.values()), "SQNR (dB)",
                  "Quantization error per layer (higher is better)")  # fmt: skip
