"""QAT end to end on a tiny model and dataset (``qat_run``: one epoch through the command line):
PTQ init, epochs, checkpoints, QDQ ONNX, table, the resolved config everywhere, resume."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from base.errors import ToolchainError
from base.metadata import ModelMetadata
from toolchain.cli import main
from toolchain.config.files import SCHEMA_VERSION, record
from toolchain.export.onnx import quantized_convs
from toolchain.jobs.qat import QATJobConfig, _callbacks, _check_tensorrt_rules, run_qat
from toolchain.models.yolo import load_model, trained_imgsz
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.modules import QuantConv2d
from toolchain.quantization.quantized_model import quantizers
from toolchain.training.config import TrainConfig
from toolchain.training.qat_trainer import QATConfig
from toolchain.training.schedulers import ScheduleConfig, lr_multiplier

OUTPUTS = ("fp32.onnx", "fp32.fp16.onnx", "ptq.int8.onnx", "qat.int8.onnx", "ptq.pt", "weights/best.pt", "weights/last.pt",
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
    for onnx in ("fp32.onnx", "fp32.fp16.onnx", "ptq.int8.onnx", "qat.int8.onnx"):
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
    def make(data=tiny_dataset, train: dict | None = None, **kwargs) -> QATJobConfig:
        train = TrainConfig(**{"data": str(data), "imgsz": 64, "epochs": 1, "batch": 8, "workers": 0, **(train or {})})
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
    assert _check_tensorrt_rules(tmp_path / "never-read.onnx", generic).startswith(
        "not checked: quant.target is generic"
    )
    with pytest.raises(ToolchainError, match="ONNX file not found"):
        _check_tensorrt_rules(tmp_path / "missing.onnx", QuantConfig())


def test_qat_exports_so_it_takes_8_bit_quantizers_only(job):
    four_bit = QuantConfig.from_dict({"target": "generic", "input": {"num_bits": 4, "calibrator": "max"}})
    with pytest.raises(ToolchainError, match=r"quant.input.num_bits: 4 bits, but ONNX Q/DQ export needs 8"):
        job(quant=four_bit)


def _quant_model() -> torch.nn.Module:
    cfg = QuantConfig()
    convs = [QuantConv2d.from_conv(torch.nn.Conv2d(3, 3, 1), cfg.input, cfg.weight) for _ in range(3)]
    return torch.nn.Sequential(*convs)


def _first_quantized_epoch(cfg: QATJobConfig) -> int:
    """The first epoch at whose start the job's callbacks have every quantizer on."""
    trainer = SimpleNamespace(model=_quant_model())
    callbacks = _callbacks(cfg, {})
    for epoch in range(cfg.train.epochs):
        for cb in callbacks:
            cb.on_epoch_start(trainer, epoch)
        if all(q.enabled for q in quantizers(trainer.model)):
            return epoch
    raise AssertionError("the quantizers never all came on")


@pytest.mark.parametrize("warmup", [0, 1, 3])
@pytest.mark.parametrize("pre_quant", [0, 1, 2])
def test_quantizers_come_on_where_the_schedule_leaves_its_float_phase(job, warmup, pre_quant):
    schedule = ScheduleConfig("qat", warmup_epochs=warmup, pre_quant=pre_quant)
    epochs = warmup + pre_quant + 4
    lr = lr_multiplier(schedule, epochs)
    # the float phase: the warm-up and the epochs at the base rate; the cosine starts at its last such epoch
    cosine_start = max(e for e in range(epochs) if lr(e) == 1.0)
    assert lr(cosine_start + 1) < 1.0
    expected = cosine_start if pre_quant else 0  # no float epochs: quantized from the start, warm-up included
    cfg = job(train={"epochs": epochs, "schedule": schedule}, sqnr=False)
    assert _first_quantized_epoch(cfg) == expected


def test_progressive_stages_must_start_where_the_float_phase_ends(job):
    schedule = ScheduleConfig("qat", warmup_epochs=1, pre_quant=1)
    with pytest.raises(ToolchainError, match=r"qat.progressive: the first stage is at epoch 0, .* ends at epoch 2"):
        job(train={"epochs": 5, "schedule": schedule}, qat=QATConfig(progressive={0: ".*"}))
    cfg = job(train={"epochs": 5, "schedule": schedule}, qat=QATConfig(progressive={2: "0", 3: ".*"}), sqnr=False)
    assert _first_quantized_epoch(cfg) == 3


def test_epochs_that_end_before_every_quantizer_is_on_are_refused(job):
    with pytest.raises(ToolchainError, match=r"train.epochs: the run ends before every .* \(from epoch 2,"):
        job(train={"epochs": 2, "schedule": ScheduleConfig("qat", pre_quant=2)})
    with pytest.raises(ToolchainError, match=r"train.epochs: .* \(from epoch 4,"):
        job(train={"epochs": 3}, qat=QATConfig(progressive={0: "0", 4: ".*"}))


FREEZE_NEEDS_LSQ = "no quantizer learns its range, so there is nothing to freeze: it needs quant.input.learn_amax"


def test_freezing_ranges_needs_learned_ranges(job, tiny_checkpoint, tiny_dataset, runs_nothing, capsys):
    with pytest.raises(ToolchainError, match=r"qat\.freeze_quant_epoch: .* or quant\.weight\.learn_amax"):
        job(qat=QATConfig(freeze_quant_epoch=1))
    argv = ["qat", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--freeze-quant-epoch", 1]
    assert main([str(a) for a in argv]) != 0 and runs_nothing == []
    assert f"--freeze-quant-epoch 1: {FREEZE_NEEDS_LSQ}" in capsys.readouterr().err
    assert main([str(a) for a in [*argv, "--quant.weight.learn-amax"]]) == 0 and len(runs_nothing) == 1
    lsq_override = QuantConfig.from_dict(
        {"overrides": [{"pattern": "model\\.0\\.conv", "input": {"learn_amax": True}}]}
    )
    assert job(qat=QATConfig(freeze_quant_epoch=1), quant=lsq_override).qat.freeze_quant_epoch == 1


PROGRESSIVE = QATConfig(progressive={0: r"model\.[0-9]\.", 1: ".*"})  # epoch 0: the backbone only


@pytest.mark.parametrize(
    ("qat", "schedule", "ema_decay"),
    [
        (PROGRESSIVE, ScheduleConfig(), 0.0),
        pytest.param(QATConfig(), ScheduleConfig("qat", pre_quant=1), 0.0, marks=pytest.mark.slow, id="pre_quant"),
        pytest.param(PROGRESSIVE, ScheduleConfig(), 0.999, marks=pytest.mark.slow, id="progressive-ema"),
    ],
    ids=["progressive", "pre_quant", "progressive-ema"],
)
def test_best_pt_is_fully_quantized_and_exported_with_every_qdq(job, qat, schedule, ema_decay):
    """Epoch 0 (the best of an untrained model's equal mAPs) has quantizers off: best.pt must skip it."""
    import onnx

    train = {"epochs": 2, "schedule": schedule, "ema_decay": ema_decay, "val_images": 4, "threads": 2}
    cfg = job(train=train, qat=qat, calib_images=8, sqnr=False)
    run_qat(cfg)
    best = load_model(cfg.run / "weights" / "best.pt")
    assert all(q.enabled for q in quantizers(best))
    placed = sum(isinstance(m, QuantConv2d) for m in best.modules())
    assert quantized_convs(onnx.load(str(cfg.run / "qat.int8.onnx")))[0] == placed > 0


def test_qat_of_a_qat_checkpoint_continues_from_its_ranges(qat_run, job):
    """The old job placed quantizers again on the loaded QAT model and refused it ("skip every one of the N
    convs"); now it trains on from the checkpoint's own quantizers and ranges, with no calibration."""
    from toolchain.distributed.model import quantizer_ranges

    best = qat_run.folder / "run" / "weights" / "best.pt"
    saved = quantizer_ranges(load_model(best))
    cfg = job(train={"val_images": 4, "threads": 2}, calib_images=8, sqnr=False, name="continued")
    cfg = QATJobConfig(str(best), cfg.train, project=cfg.project, name="continued", calib_images=8, sqnr=False)
    report = run_qat(cfg)
    start = load_model(cfg.run / "ptq.pt")  # the starting point, the report's "PTQ INT8" row
    torch.testing.assert_close(quantizer_ranges(start), saved, rtol=0, atol=0)  # no recalibration
    assert set(report["results"]) == {"FP32", "PTQ INT8", "QAT INT8"} and (cfg.run / "qat.int8.onnx").is_file()


def test_the_sensitive_preset_is_resolved_before_qat_yaml_is_written(job):
    cfg = job(train={"val_images": 4, "threads": 2, "epochs": 1}, calib_images=8, sqnr=False,
              quant=QuantConfig.from_dict({"preset": "sensitive", "sensitive_keep": 1}), name="sensitive")  # fmt: skip
    run_qat(cfg)
    recorded = yaml.safe_load((cfg.run / "qat.yaml").read_text())["quant"]
    assert recorded["preset"] == "default"  # resolved: a rerun of qat.yaml places the same quantizers
    skipped = [o["pattern"] for o in recorded["overrides"] if o["skip"]]
    assert len(skipped) >= 2 and any("model\\.0\\." in p or p.startswith("model\\.0") for p in skipped), skipped
    best = load_model(cfg.run / "weights" / "best.pt")
    assert not isinstance(best.get_submodule("model.0.conv"), QuantConv2d)


def test_a_teacher_without_distillation_is_refused(job, tiny_checkpoint):
    with pytest.raises(Exception, match="teacher: a teacher is only used by distillation"):
        job(teacher=str(tiny_checkpoint))
