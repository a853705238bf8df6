"""QAT end to end on a tiny model and dataset (``qat_run``: one epoch through the command line):
PTQ init, epochs, checkpoints, QDQ ONNX, table, the resolved config everywhere, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from base.errors import ToolchainError
from base.metadata import ModelMetadata
from toolchain.cli import main
from toolchain.config.files import SCHEMA_VERSION, record
from toolchain.jobs.qat import QATJobConfig, _check_tensorrt_rules, run_qat
from toolchain.models.yolo import load_model, trained_imgsz
from toolchain.quantization.config import QuantConfig
from toolchain.training.config import TrainConfig

OUTPUTS = ("fp32.onnx", "ptq.int8.onnx", "qat.int8.onnx", "ptq.pt", "weights/best.pt", "weights/last.pt",
           "results.csv", "report.md", "report.json", "sqnr.csv", "sqnr.png", "qat.yaml")  # fmt: skip


def test_qat_writes_checkpoints_onnx_and_table(qat_run):
    assert qat_run.code == 0, qat_run.err
    run = qat_run.folder / "run"
    for name in OUTPUTS:
        assert (run / name).is_file(), name
    report = json.loads((run / "report.json").read_text())
    assert report["epochs"] == 1 and report["check_qdq"].endswith("OK") and report["imgsz"] == 64
    assert set(report["results"]) == {"FP32", "PTQ INT8", "QAT INT8"}
    assert "| QAT INT8 |" in qat_run.out
    rows = (run / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and "distill" in rows[0] and "quant_penalty" in rows[0]


def test_the_resolved_config_is_beside_every_output(qat_run):
    run = qat_run.folder / "run"
    saved = yaml.safe_load((run / "qat.yaml").read_text())
    assert saved["version"] == SCHEMA_VERSION and saved["train"]["imgsz"] == 64 and saved["export"]["imgsz"] == 64
    assert saved["train"]["loss"]["distill"] == 0.5 and saved["quant"]["overrides"][0]["pattern"] == "model\\.0\\.conv"
    as_json = json.loads(json.dumps(saved))  # JSON writes the progressive stages' epochs as strings
    assert json.loads((run / "report.json").read_text())["config"] == as_json
    for onnx in ("fp32.onnx", "ptq.int8.onnx", "qat.int8.onnx"):
        assert ModelMetadata.load(run / onnx).extra["config"] == as_json, onnx
    for pt in ("ptq.pt", "weights/best.pt", "weights/last.pt"):
        checkpoint = torch.load(run / pt, weights_only=False)
        assert checkpoint["config"] == saved and checkpoint["train_args"]["imgsz"] == 64, pt
    assert trained_imgsz(load_model(run / "weights" / "best.pt")) == 64  # our checkpoints carry their size


@pytest.mark.parametrize("written", ["qat.yaml", "qat.int8.onnx.json", "report.json"])
def test_config_of_a_written_file_reproduces_the_run(qat_run, runs_nothing, written):
    run = qat_run.folder / "run"
    assert main(["qat", "--config", str(run / written)]) == 0
    (cfg,) = runs_nothing
    assert record(cfg) == yaml.safe_load((run / "qat.yaml").read_text())


def test_dynamic_batch_export(qat_run):
    import onnx

    from deploy.runtime.onnxruntime import OnnxRuntimeRunner

    run = qat_run.folder / "run"
    for name in ("fp32.onnx", "qat.int8.onnx"):
        dim = onnx.load(str(run / name)).graph.input[0].type.tensor_type.shape.dim[0]
        assert not dim.HasField("dim_value"), name
    with OnnxRuntimeRunner(run / "qat.int8.onnx") as runner:
        assert runner.max_batch is None
        assert runner.infer(np.zeros((3, 3, 64, 64), np.float32))[0].shape == (3, 14, 84)


def test_resume_continues_after_the_last_epoch(qat_run, copy_of, capsys):
    run = copy_of(qat_run.folder / "run")
    assert torch.load(run / "weights" / "last.pt", weights_only=False)["epoch"] == 0
    argv = ["qat", "--config", run / "qat.yaml", "--project", run.parent, "--epochs", 2, "--resume"]
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert json.loads((run / "report.json").read_text())["epochs"] == 2  # one epoch from the first run, one resumed
    assert torch.load(run / "weights" / "last.pt", weights_only=False)["epoch"] == 1


@pytest.fixture()
def job(tmp_path, tiny_checkpoint, tiny_dataset):
    def make(data=tiny_dataset, **kwargs) -> QATJobConfig:
        train = TrainConfig(data=str(data), imgsz=64, epochs=1, batch=8, workers=0)
        return QATJobConfig(str(tiny_checkpoint), train, project=str(tmp_path), **kwargs)

    return make


def test_resume_without_a_run_is_a_clear_error(job):
    with pytest.raises(ToolchainError, match="nothing to resume"):
        run_qat(job(resume=True))


def test_checkpoint_of_another_class_count_is_refused(tmp_path, job):
    data = tmp_path / "data.yaml"
    (tmp_path / "images" / "train").mkdir(parents=True)
    data.write_text("train: images/train\nval: images/train\nnames: [a, b]\n")
    with pytest.raises(ToolchainError, match=r"10 classes .* but .* has 2"):
        run_qat(job(data))


def test_tensorrt_rules_are_checked_for_a_tensorrt_target_only(tmp_path):
    generic = QuantConfig.from_dict({"target": "generic", "input": {"symmetric": False, "calibrator": "max"}})
    assert _check_tensorrt_rules(tmp_path / "never-read.onnx", generic).startswith("not checked: quant.target is generic")
    with pytest.raises(ToolchainError, match="ONNX file not found"):
        _check_tensorrt_rules(tmp_path / "missing.onnx", QuantConfig())


def test_qat_exports_so_it_takes_8_bit_quantizers_only(job):
    four_bit = QuantConfig.from_dict({"target": "generic", "input": {"num_bits": 4, "calibrator": "max"}})
    with pytest.raises(ToolchainError, match=r"quant.input.num_bits: 4 bits, but ONNX Q/DQ export needs 8"):
        job(quant=four_bit)
