"""The generic training loop: optimizer, AMP on GPU, gradient clipping, EMA, train and val epochs,
callbacks (checkpoints, early stopping, logging), resumable from ``last.pt``, in one process or as
one rank of a ``torchrun`` job (``toolchain.distributed``).

Data come from ultralytics' dataset (its augmentations, mosaic off by default), sharded over the
ranks; validation is our COCO evaluator on the val split through a ``TorchRunner``, the same numbers
as deployment. Under torchrun, rank 0 alone validates, keeps the EMA and runs the callbacks
(checkpoints, CSV, TensorBoard) while the others wait; ``batch`` is per process.

The settings live in ``training.config``, the EMA in ``training.ema``, the data in ``training.loaders``.
"""

from __future__ import annotations

import logging
import random
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from base.dataset import load_data_yaml, load_split
from deploy.evaluate import EvalResult, evaluate
from toolchain.distributed.config import DistributedConfig
from toolchain.distributed.data import set_epoch
from toolchain.distributed.loss import GlobalTargetNormalization, backward_scale
from toolchain.distributed.lr import rescale_lr, scaled_lr
from toolchain.distributed.model import (
    average_gradients,
    broadcast_parameters,
    copy_buffers_from_main,
    differing_tensors,
    set_lsq_global_batch,
    wrap_ddp,
)
from toolchain.distributed.process import DistributedContext, average_over_ranks, cpu_threads, on_main
from toolchain.models.torch_runner import TorchRunner
from toolchain.training.config import TrainConfig
from toolchain.training.ema import ModelEMA
from toolchain.training.loaders import build_train_loader
from toolchain.training.losses import detection_criterion
from toolchain.training.schedulers import create_scheduler

logger = logging.getLogger(__name__)
SCALED_LR = "scaled_lr"  # optimizer param-group key: the lr of the world size and rule the run started with


class Callback:
    """Hooks a trainer calls; subclasses override what they need.

    Under torchrun a callback runs on rank 0 only (it writes files, logs, decides to stop), unless
    ``every_rank`` is true (it changes the model, which every rank must do alike).
    """

    every_rank: bool = False

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...


def _trainable(model: nn.Module) -> nn.Module:
    """Every parameter trains but the DFL conv's fixed weights (checkpoints are saved frozen)."""
    for name, p in model.named_parameters():
        p.requires_grad_(".dfl." not in name and p.dtype.is_floating_point)
    return model


class Trainer:
    """Trains a detection model with callbacks.

    Args:
        model: An ultralytics ``DetectionModel`` (float or with quantizers).
        cfg: The run's settings (``imgsz`` resolved).
        callbacks: Called at fit and epoch boundaries (on rank 0, see ``Callback``).
        dist: This process's place in a torchrun job (``init_distributed``; ``None``: one process on ``cfg.device``).
        distributed: The job's lr scaling rule and loss normalisation (``None``: the defaults).
    """

    def __init__(
        self, model: nn.Module, cfg: TrainConfig, callbacks: list[Callback] | None = None,
        dist: DistributedContext | None = None, distributed: DistributedConfig | None = None,
    ) -> None:  # fmt: skip
        assert cfg.imgsz is not None, "resolve imgsz (the weights' training size) before training"
        self.cfg = cfg
        self.dist = dist or DistributedContext(device=torch.device(cfg.device if cfg.device != "0" else "cuda:0"))
        self.distributed = distributed or DistributedConfig()
        self.device = self.dist.device
        self.rate = scaled_lr(cfg.lr0, cfg.batch, self.dist.world_size, self.distributed.lr_scaling,
                              self.distributed.base_batch, cfg.optimizer)  # fmt: skip
        self.model = _trainable(model.to(self.device))
        self.train_model: nn.Module = self.model  # the DDP wrapper once ``distribute`` ran
        self.ddp_kwargs: dict = {}
        self.callbacks = list(callbacks or [])
        self.start_epoch = 0
        self.best_fitness: float | None = None
        self.history: list[dict] = []
        self.stop = False
        split = load_split(load_data_yaml(cfg.data), "val", limit=cfg.val_images or None) if self.dist.is_main else None
        self.val_split = split  # rank 0 validates
        self.criterion = detection_criterion(self.model, cfg.loss)
        self.optimizer = self._optimizer()
        self.scheduler = create_scheduler(self.optimizer, cfg.schedule, cfg.epochs)
        self.ema = ModelEMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 and self.dist.is_main else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and self.device.type == "cuda")

    def _optimizer(self) -> torch.optim.Optimizer:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        extra = self.extra_param_groups()
        self.extra_params = [p for group in extra for p in group["params"]]  # not DDP's: synced by us
        groups += extra
        for group in groups:  # saved with the optimizer: a resume at another world size rescales from it
            group[SCALED_LR] = self.rate.lr
        if self.cfg.optimizer == "AdamW":
            return torch.optim.AdamW(groups, lr=self.rate.lr, betas=(self.cfg.momentum, 0.999))
        return torch.optim.SGD(groups, lr=self.rate.lr, momentum=self.cfg.momentum, nesterov=True)

    def extra_param_groups(self) -> list[dict]:
        """Optimizer groups of parameters outside the model (a subclass's loss modules); none here."""
        return []

    def ddp_options(self) -> dict:
        """``wrap_ddp``'s keyword arguments for this trainer's model (subclasses know more)."""
        return {}

    def distribute(self) -> None:
        """Make the (possibly just resumed) model one rank's part of the job; a no-op in spirit for one process.

        Activation LSQ ranges count the whole batch, the model is wrapped in DDP (after the quantizers
        were placed and calibrated: DDP copies rank 0's parameters and buffers to every rank), the
        detection loss is normalised over the whole batch, the EMA lives on rank 0 only, and a
        resumed optimizer saved at another world size (or rule) gets this one's learning rate.
        """
        set_lsq_global_batch(self.model, self.dist.world_size)
        self.ddp_kwargs = self.ddp_options()
        self.train_model = wrap_ddp(self.model, self.dist, **self.ddp_kwargs)
        broadcast_parameters(self.extra_params, self.dist)  # DDP copies rank 0's model; these too
        criterion = detection_criterion(self.model, self.cfg.loss)
        if self.distributed.global_target_norm:
            criterion = GlobalTargetNormalization(criterion, self.dist)
        self.criterion = criterion
        if not self.dist.is_main:
            self.ema = None
        saved = self.optimizer.param_groups[0].get(SCALED_LR, self.rate.lr)
        if saved != self.rate.lr:
            rescale_lr(self.optimizer, self.scheduler, self.rate.lr / saved)
            for group in self.optimizer.param_groups:
                group[SCALED_LR] = self.rate.lr
            logger.info("Resumed optimizer: lr %.6g (saved) -> %.6g for %s", saved, self.rate.lr, self.rate)
        if self.dist.is_main:
            logger.info("%s", self.rate)

    @property
    def eval_model(self) -> nn.Module:
        """The weights validated and saved: the EMA when there is one."""
        return self.ema.ema if self.ema else self.model

    def prepare_epoch(self, epoch: int) -> None:
        """Put the model in training mode for ``epoch``; subclasses freeze parts of it."""
        self.model.train()

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Detection loss of one batch; subclasses add terms."""
        preds = self.train_model(batch["img"])
        loss, items = self.criterion(preds, batch)
        return loss.sum(), {k: float(v) for k, v in items.items()}

    def train_one_epoch(self, loader, epoch: int) -> dict:
        """One pass over this rank's shard; returns the mean loss items (averaged over the ranks)."""
        self.prepare_epoch(epoch)
        totals: dict[str, float] = {}
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", unit="batch", leave=False,
                   disable=not self.dist.is_main)  # fmt: skip
        for i, batch in enumerate(bar):
            for k, v in self.train_step(batch).items():
                totals[k] = totals.get(k, 0.0) + v
            bar.set_postfix({k: f"{v / (i + 1):.3f}" for k, v in totals.items()})
        return average_over_ranks({k: v / max(1, len(loader)) for k, v in totals.items()}, self.dist)

    def train_step(self, batch: dict) -> dict:
        """One optimizer step on a loader batch; returns its loss items."""
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        batch["img"] = batch["img"].float() / 255
        with torch.autocast(self.device.type, enabled=self.scaler.is_enabled()):
            loss, items = self.compute_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss * backward_scale(self.dist)).backward()  # DDP averages; the shares must add up
        average_gradients(self.extra_params, self.dist)  # as DDP averages the model's
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema:
            self.ema.update(self.model)
        return items

    def validate(self) -> EvalResult:
        """COCO mAP of ``eval_model`` on the val split, through our evaluator."""
        with TorchRunner(self.eval_model, self.cfg.imgsz, str(self.device)) as runner:
            return evaluate(runner, self.val_split, self.cfg.imgsz)

    def fit(self) -> dict:
        """Train for the remaining epochs; returns the last epoch's metrics (on every rank)."""
        torch.manual_seed(self.cfg.seed)  # the same model on every rank (DDP copies rank 0's anyway)
        random.seed(self.cfg.seed + self.dist.rank)  # ultralytics' augmentations, when workers=0
        np.random.seed(self.cfg.seed + self.dist.rank)
        if self.device.type == "cpu":
            torch.set_num_threads(self.cfg.threads or cpu_threads(self.dist))
        loader = build_train_loader(self.cfg, int(self.model.stride.max()), self.dist)
        self.distribute()
        here = [cb for cb in self.callbacks if self.dist.is_main or cb.every_rank]
        for cb in here:
            cb.on_fit_start(self)
        metrics: dict = {}
        for epoch in range(self.start_epoch, self.cfg.epochs):
            for cb in here:
                cb.on_epoch_start(self, epoch)
            set_epoch(loader, epoch)
            start = time.perf_counter()
            losses = self.train_one_epoch(loader, epoch)
            train_seconds = time.perf_counter() - start
            self._check_ranks_agree(epoch)
            at = f"epoch {epoch + 1}"
            metrics = on_main(self.dist, f"the validation of {at}", self._validate_epoch, epoch, losses, train_seconds)
            self.history.append(metrics)
            self._step_scheduler(metrics["map50_95"])  # every rank: plateau needs the same fitness everywhere
            ended = on_main(self.dist, f"the callbacks of {at}", self._end_epoch, here, epoch, metrics)
            self.stop, self.best_fitness = ended
            if self.stop:
                logger.info("Stopping early after epoch %d", epoch + 1)
                break
        for cb in here:
            cb.on_fit_end(self)
        return metrics

    def _check_ranks_agree(self, epoch: int) -> None:
        """Every rank holds rank 0's model after an epoch (weights, statistics, ranges), or the job stops."""
        if not self.dist.is_distributed:
            return
        if self.ddp_kwargs.get("broadcast_buffers", True):
            copy_buffers_from_main(self.model, self.dist)  # BatchNorm statistics updated per rank
        differ = differing_tensors(self.model, self.dist)
        outside = differing_tensors(nn.ParameterList(self.extra_params), self.dist)
        differ += [f"parameter {n} outside the model" for n in outside]
        if differ:
            raise RuntimeError(f"the ranks' models differ after epoch {epoch + 1} (a bug, not your data): {differ[:5]}")

    def _validate_epoch(self, epoch: int, losses: dict, train_seconds: float) -> dict:
        """Rank 0: validate and log the epoch; returns its metrics."""
        result = self.validate()
        metrics = {"epoch": epoch + 1, **losses, "map50_95": result.map50_95, "map50": result.map50,
                   "lr": self.optimizer.param_groups[0]["lr"], "train_seconds": train_seconds}  # fmt: skip
        logger.info(
            "epoch %d/%d: mAP50-95 %.4f mAP50 %.4f (train %.0f s)",
            epoch + 1, self.cfg.epochs, result.map50_95, result.map50, train_seconds,
        )  # fmt: skip
        return metrics

    def _end_epoch(self, callbacks: list[Callback], epoch: int, metrics: dict) -> tuple[bool, float | None]:
        """Rank 0: the epoch-end callbacks (checkpoints, CSV, early stopping...); returns what every rank needs."""
        for cb in callbacks:
            cb.on_epoch_end(self, epoch, metrics)
        return self.stop, self.best_fitness

    def _step_scheduler(self, fitness: float) -> None:
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(fitness)
        else:
            self.scheduler.step()

    def state(self, epoch: int) -> dict:
        """Everything a resumed run needs."""
        return {
            "model": self.model, "ema": self.ema.ema if self.ema else None,
            "ema_updates": self.ema.updates if self.ema else 0, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": epoch, "best_fitness": self.best_fitness,
            "history": self.history,
        }  # fmt: skip

    def load_state(self, state: dict) -> None:
        """Continue a run from ``state`` (``last.pt``): the next epoch starts after the saved one."""
        self.model = _trainable(state["model"].to(self.device))
        self.criterion = detection_criterion(self.model, self.cfg.loss)
        self.optimizer = self._optimizer()
        self.scheduler = create_scheduler(self.optimizer, self.cfg.schedule, self.cfg.epochs)
        # after the scheduler, which sets every group's lr to the first epoch's: the saved lr is the next epoch's
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.cfg.ema_decay > 0 and state.get("ema") is not None:
            self.ema = ModelEMA(state["ema"], self.cfg.ema_decay, state["ema_updates"])
        self.start_epoch = state["epoch"] + 1
        self.best_fitness = state["best_fitness"]
        self.history = state["history"]
