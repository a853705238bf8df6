"""RESUME through our checkpoint format: ``last.pt`` written by ``ModelCheckpoint`` (tensors and plain
data) gives a trainer with the same weights, quantizer state, optimizer, scheduler and EMA."""

from __future__ import annotations

import numpy as np
import torch

from toolchain.models.checkpoint import load_checkpoint
from toolchain.models.yolo import build_model, load_model
from toolchain.quantization.calibration import calibrate
from toolchain.quantization.config import QuantConfig, QuantizerConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.quantized_model import quantizers
from toolchain.training.callbacks import ModelCheckpoint
from toolchain.training.config import TrainConfig
from toolchain.training.qat_trainer import QATConfig, QATTrainer


def _states_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def test_last_pt_resumes_weights_quantizers_optimizer_and_ema(tiny_dataset, tmp_path):
    torch.manual_seed(0)
    model = build_model("yolov8n.yaml", [f"c{i}" for i in range(10)])
    quantize_model(model, QuantConfig(input=QuantizerConfig(calibrator="max"),
                                      weight=QuantizerConfig(axis=0, calibrator="max", learn_amax=True)))  # fmt: skip
    calibrate(model, [np.random.default_rng(0).random((2, 3, 64, 64), np.float32)])
    quantizers(model)[2].enabled = False  # as progressive quantization leaves a stage not yet due
    cfg = TrainConfig(data=str(tiny_dataset), imgsz=64, epochs=3, batch=2, workers=0, ema_decay=0.9)
    trainer = QATTrainer(model, cfg, QATConfig())
    for p in trainer.model.parameters():  # one optimizer step: momentum buffers, moved weights and ranges
        p.grad = torch.full_like(p, 0.01) if p.requires_grad else None
    trainer.optimizer.step()
    trainer.ema.update(trainer.model)
    trainer.scheduler.step()
    trainer.history.append({"epoch": 1, "map50_95": np.float64(0.25)})

    checkpoint = ModelCheckpoint(tmp_path / "weights", {"version": 1})
    checkpoint.on_epoch_end(trainer, 0, {"map50_95": 0.25})
    assert not (tmp_path / "weights" / "best.pt").exists()  # a quantizer off: best.pt waits for a fully quantized epoch
    state = load_checkpoint(tmp_path / "weights" / "last.pt")
    resumed = QATTrainer(state["model"], cfg, QATConfig())
    resumed.load_state(state)

    assert (
        resumed.start_epoch == 1
        and resumed.best_fitness is None
        and resumed.history == [{"epoch": 1, "map50_95": 0.25}]
    )
    assert _states_equal(resumed.model.state_dict(), trainer.model.state_dict())
    assert [q.enabled for q in quantizers(resumed.model)] == [q.enabled for q in quantizers(trainer.model)]
    saved, loaded = trainer.optimizer.state_dict(), resumed.optimizer.state_dict()
    assert saved["param_groups"] == loaded["param_groups"] and saved["state"].keys() == loaded["state"].keys()
    assert all(_states_equal(saved["state"][k], loaded["state"][k]) for k in saved["state"])
    assert resumed.scheduler.state_dict() == trainer.scheduler.state_dict()
    assert resumed.ema.updates == 1 and _states_equal(resumed.ema.ema.state_dict(), trainer.ema.ema.state_dict())
    quantizers(trainer.model)[2].enabled = True  # the last stage is due: the EMA follows at its next update
    trainer.ema.update(trainer.model)
    checkpoint.on_epoch_end(trainer, 1, {"map50_95": 0.2})
    best = load_model(tmp_path / "weights" / "best.pt")  # best.pt holds the EMA weights, the ones validated
    assert _states_equal(best.state_dict(), trainer.ema.ema.state_dict()) and trainer.best_fitness == 0.2
    assert all(q.enabled for q in quantizers(best)) and load_checkpoint(tmp_path / "weights" / "best.pt")["epoch"] == 1
