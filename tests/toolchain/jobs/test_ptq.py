"""The ``toolchain ptq`` job (``ptq_run``: through the command line): both ONNX, the calibrated checkpoint
and the resolved config beside each, and that config running the job again; a preset recorded resolved;
and the start of QAT from a quantized checkpoint (``qat_start``), which ``ptq`` refuses in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from base.errors import ToolchainError
from deploy.qdq.rules import check_qdq
from toolchain.data.signs import SIGN_CLASSES
from toolchain.export.onnx import ExportConfig
from toolchain.jobs.prologue import prologue
from toolchain.jobs.ptq import PTQOutputs, qat_start, write_start_outputs
from toolchain.models.checkpoint import save_checkpoint
from toolchain.models.yolo import build_model, load_model
from toolchain.quantization.calibration import calibrate, calibrated_model
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.quantized_model import quantization_disabled, quantizers


def test_ptq_command_writes_both_onnx_the_checkpoint_and_their_config(ptq_run):
    from base.metadata import ModelMetadata
    from toolchain.models.yolo import trained_imgsz

    assert ptq_run.code == 0, ptq_run.err
    folder = ptq_run.folder
    int8, fp32 = ModelMetadata.load(folder / "tiny.int8.onnx"), ModelMetadata.load(folder / "tiny.onnx")
    assert int8.precision == "int8" and fp32.precision == "fp32" and int8.imgsz == fp32.imgsz == (64, 64)
    config = int8.extra["config"]
    assert config == fp32.extra["config"] and config["imgsz"] == 64 and config["num_images"] == 8
    assert int8.quantization["overrides"][0]["input"] == {"calibrator": "moving_average_max"}
    checkpoint = torch.load(folder / "tiny.int8.pt", weights_only=True)  # tensors and plain data only
    assert checkpoint["config"] == config and trained_imgsz(load_model(folder / "tiny.int8.pt")) == 64
    assert check_qdq(folder / "tiny.int8.onnx").ok


def test_config_of_the_sidecar_reproduces_the_ptq_run(ptq_run, tmp_path):
    import onnx
    from onnx import numpy_helper

    from toolchain.cli import main

    again = tmp_path / "again.int8.onnx"
    assert main(["ptq", "--config", str(ptq_run.folder / "tiny.int8.onnx.json"), "--out", str(again), "--no-fp32"]) == 0

    def weights(path):
        return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}

    first, second = weights(ptq_run.folder / "tiny.int8.onnx"), weights(again)
    assert first.keys() == second.keys()
    for name, value in first.items():  # int8 weights exactly; ranges to float32 summation order
        if value.dtype.kind == "f":
            np.testing.assert_allclose(value, second[name], rtol=1e-6, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(value, second[name], err_msg=name)


@pytest.fixture(scope="module")
def qat_checkpoint(tmp_path_factory) -> Path:
    """A tiny QAT checkpoint as the QAT trainer writes best.pt: quantized (LSQ input ranges), calibrated on
    random batches, one training step so the learned ranges moved off the calibrated ones, then saved."""
    torch.manual_seed(0)
    model = build_model("yolov8n.yaml", list(SIGN_CLASSES))
    quantize_model(model, QuantConfig.from_dict({"input": {"calibrator": "max", "learn_amax": True}}))
    calibrate(model, [np.random.default_rng(0).random((2, 3, 64, 64), np.float32)])
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    _training_loss(model, torch.rand(2, 3, 64, 64)).backward()
    optimizer.step()
    path = tmp_path_factory.mktemp("qat") / "best.pt"
    return save_checkpoint(path, model.eval(), 64, {"name": "qat"}, epoch=0, fitness=0.1)


def _training_loss(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    out = model(images)
    return sum(v.pow(2).mean() for k, v in out.items() if k in ("boxes", "scores"))


def test_qat_continues_a_qat_checkpoint_from_its_ranges(qat_checkpoint, tiny_dataset, monkeypatch):
    from toolchain.quantization import calibration

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(calibration, "calibrate", no_calibration)
    saved = torch.load(qat_checkpoint, weights_only=True)["model"]["state_dict"]
    model, imgsz = prologue(qat_checkpoint, None, tiny_dataset)
    start = qat_start(model, qat_checkpoint)
    assert start.from_checkpoint and start.student is model and imgsz == 64
    ranges = {k: v for k, v in start.student.state_dict().items() if k.rsplit(".", 1)[-1] in ("amax", "learned_amax")}
    assert ranges and any(k.endswith("learned_amax") for k in ranges)
    for key, value in ranges.items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0, msg=key)
    teacher = start.teacher
    assert not quantizers(teacher) and not any(isinstance(m, QuantConv2d) for m in teacher.modules())
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad(), quantization_disabled(start.student):
        torch.testing.assert_close(teacher(images)[0], start.student(images)[0], rtol=0, atol=0)
    assert not {p.data_ptr() for p in teacher.parameters()} & {p.data_ptr() for p in start.student.parameters()}
    start.student.train()
    _training_loss(start.student, images).backward()  # QAT's forward and backward: LSQ ranges get gradients
    learned = [q.learned_amax for q in quantizers(start.student) if q.learned_amax is not None]
    assert learned and all(p.grad is not None and torch.isfinite(p.grad).all() for p in learned)


def test_qat_of_fp32_weights_calibrates_first(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    start = qat_start(model, tiny_checkpoint)
    assert not start.from_checkpoint and start.teacher is model


def test_the_start_of_a_continued_qat_writes_the_ptq_files_of_the_checkpoint(qat_checkpoint, tmp_path):
    start = qat_start(load_model(qat_checkpoint), qat_checkpoint)
    outputs = PTQOutputs(tmp_path / "ptq.int8.onnx", ExportConfig(imgsz=64), tmp_path / "fp32.onnx",
                         tmp_path / "ptq.pt", str(qat_checkpoint), {"name": "qat"})  # fmt: skip
    write_start_outputs(start, outputs)
    assert check_qdq(tmp_path / "ptq.int8.onnx").ok and check_qdq(tmp_path / "fp32.onnx", allow_float=True).ok
    assert check_qdq(tmp_path / "fp32.onnx", allow_float=True).quantized_convs == 0
    again = load_model(tmp_path / "ptq.pt")
    for a, b in zip(quantizers(again), quantizers(start.student)):
        torch.testing.assert_close(a.current_amax(), b.current_amax(), rtol=0, atol=0)


def test_ptq_of_a_qat_checkpoint_is_one_line_saying_what_to_do(qat_checkpoint, tiny_dataset, tmp_path, capsys):
    from toolchain.cli import main

    argv = ["ptq", "--weights", qat_checkpoint, "--data", tiny_dataset, "--out", tmp_path / "x.int8.onnx"]
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "skip every one" not in err, err  # not the placement's misleading refusal
    assert f"--weights {qat_checkpoint}: a quantized checkpoint (57 quantized convs" in err
    assert f"'toolchain qat --weights {qat_checkpoint}'" in err
    model = load_model(qat_checkpoint)
    with pytest.raises(ToolchainError, match=r"^PTQ: the model is quantized already \(57 quantized convs"):
        calibrated_model(model, QuantConfig(), [])


def test_the_sensitive_preset_is_recorded_resolved(tiny_checkpoint, tiny_dataset, tmp_path):
    from base.metadata import ModelMetadata
    from toolchain.cli import main

    out = tmp_path / "s.int8.onnx"
    argv = ["ptq", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--num-images", 2, "--batch", 2, "--out", out,
            "--quant.preset", "sensitive", "--quant.sensitive-keep", 1]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    quant = ModelMetadata.load(out).extra["config"]["quant"]
    skipped = [o["pattern"] for o in quant["overrides"] if o["skip"]]
    assert quant["preset"] == "default" and skipped[0] == r"model\.0\.conv" and len(skipped) >= 2
    sidecar = {k: v for k, v in ModelMetadata.load(out).quantization.items() if k != "placement"}
    assert QuantConfig.from_dict(sidecar) == QuantConfig.from_dict(quant)  # what the rerun of --config places
    report = check_qdq(out)
    assert report.ok and report.quantized_convs == 57 - len(skipped), report.summary()
