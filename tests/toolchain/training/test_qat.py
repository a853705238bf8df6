"""QAT end to end on a tiny model and dataset: PTQ init, epochs, checkpoints, resume, QDQ ONNX, table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deploy.errors import ToolchainError
from toolchain.quantization.config import QuantConfig
from toolchain.training.losses import LossConfig
from toolchain.training.pipeline import QATRunConfig, run_qat
from toolchain.training.qat_trainer import QATConfig, QATTrainer, export_form
from toolchain.training.trainer import TrainConfig


def _cfg(tmp_path, data, epochs=1, resume=False, **loss) -> QATRunConfig:
    train = TrainConfig(
        data=str(data), imgsz=64, epochs=epochs, batch=8, workers=0, out=str(tmp_path / "run"), resume=resume,
        loss=LossConfig(**loss),
    )  # fmt: skip
    return QATRunConfig(str(data.parent.parent / "ckpt" / "tiny.pt"), QATConfig(train), QuantConfig(), 16, sqnr=True)


@pytest.fixture()
def run_config(tmp_path, tiny_checkpoint, tiny_dataset):
    def make(**kwargs) -> QATRunConfig:
        cfg = _cfg(tmp_path, tiny_dataset, **kwargs)
        return QATRunConfig(str(tiny_checkpoint), cfg.qat, cfg.quant, cfg.calib_images, sqnr=cfg.sqnr)

    return make


def test_qat_writes_checkpoints_onnx_and_table(tmp_path, run_config, capsys):
    report = run_qat(run_config(epochs=2, distill=1.0, quant_penalty=0.1))
    run = tmp_path / "run"
    for name in ("fp32.onnx", "ptq.int8.onnx", "qat.int8.onnx", "weights/best.pt", "weights/last.pt",
                 "results.csv", "report.md", "report.json", "sqnr.csv", "sqnr.png", "qat.yaml"):  # fmt: skip
        assert (run / name).is_file(), name
    assert report["epochs"] == 2 and report["check_qdq"].endswith("OK")
    assert set(report["results"]) == {"FP32", "PTQ INT8", "QAT INT8"}
    assert "| QAT INT8 |" in capsys.readouterr().out
    rows = (run / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and "distill" in rows[0] and "quant_penalty" in rows[0]
    assert json.loads((run / "report.json").read_text())["imgsz"] == 64


def test_resume_continues_after_the_last_epoch(tmp_path, run_config):
    run_qat(run_config(epochs=1))
    state = torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=False)
    assert state["epoch"] == 0
    report = run_qat(run_config(epochs=2, resume=True))
    assert report["epochs"] == 2  # one epoch from the first run, one resumed
    assert torch.load(tmp_path / "run" / "weights" / "last.pt", weights_only=False)["epoch"] == 1


def test_resume_without_a_run_is_a_clear_error(run_config):
    with pytest.raises(ToolchainError, match="nothing to resume"):
        run_qat(run_config(resume=True))


def test_checkpoint_of_another_class_count_is_refused(tmp_path, tiny_checkpoint):
    data = tmp_path / "data.yaml"
    (tmp_path / "images" / "train").mkdir(parents=True)
    data.write_text("train: images/train\nval: images/train\nnames: [a, b]\n")
    cfg = _cfg(tmp_path, data)
    with pytest.raises(ToolchainError, match=r"10 classes .* but .* has 2"):
        run_qat(QATRunConfig(str(tiny_checkpoint), cfg.qat, cfg.quant))


def test_trainer_refuses_a_model_without_quantizers(tiny_checkpoint, tiny_dataset, tmp_path):
    from toolchain.models.yolo import load_model

    with pytest.raises(ToolchainError, match="no quantizers"):
        QATTrainer(load_model(tiny_checkpoint), QATConfig(TrainConfig(data=str(tiny_dataset), out=str(tmp_path))))


def test_export_form_folds_batchnorm_and_keeps_outputs(tiny_checkpoint, tiny_dataset):
    from toolchain.models.yolo import load_model
    from toolchain.quantization.placement import quantize_model
    from toolchain.quantization.ptq import calibrate, calibration_batches

    model = load_model(tiny_checkpoint)
    quantize_model(model, QuantConfig())
    calibrate(model, calibration_batches(str(tiny_dataset), 64, 8, 8))
    folded = export_form(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model.eval()(x)[0], folded(x)[0]
    assert torch.allclose(a, b, rtol=1e-2, atol=1e-2)


def test_dynamic_batch_export(tmp_path, tiny_checkpoint, tiny_dataset):
    import onnx

    from deploy.runtime.onnxruntime import OnnxRuntimeRunner

    cfg = _cfg(tmp_path, tiny_dataset)
    run_qat(QATRunConfig(str(tiny_checkpoint), cfg.qat, cfg.quant, 16, sqnr=False, dynamic_batch=True))
    for name in ("fp32.onnx", "qat.int8.onnx"):
        dim = onnx.load(str(tmp_path / "run" / name)).graph.input[0].type.tensor_type.shape.dim[0]
        assert not dim.HasField("dim_value"), name
    with OnnxRuntimeRunner(tmp_path / "run" / "qat.int8.onnx") as runner:
        assert runner.max_batch is None
        assert runner.infer(np.zeros((3, 3, 64, 64), np.float32))[0].shape == (3, 14, 84)
