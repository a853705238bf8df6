"""The ``toolchain analyze`` job through the command line, on a width-scaled YOLOv8 at 64 px: the report
of an FP32 .pt (PTQ here, one conv planted with a weight outlier) and of a quantized checkpoint (as it is),
its numbers checked against the files and the models, and its mistakes one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toolchain.jobs.analyze import AnalyzeConfig
from toolchain.models.checkpoint import save_checkpoint
from toolchain.models.yolo import load_model
from toolchain.quantization.calibration import calibrated_model, calibration_batches
from toolchain.quantization.config import QuantConfig
from toolchain.quantization.placement import quantize_model
from toolchain.training.callbacks import sqnr_per_layer

PLANTED = "model.22.cv3.0.1.conv"
WORST = 4
TAIL = {f"model.22.{branch}.{level}.2" for branch in ("cv2", "cv3") for level in range(3)} | {"model.22.dfl.conv"}


def narrow_model(data: str) -> torch.nn.Module:
    """YOLOv8n at an eighth of its width, BatchNorm statistics taken from training images (an untrained
    net's activations fade with depth, which would leave every layer with a poor SQNR)."""
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    from toolchain.data.signs import SIGN_CLASSES

    torch.manual_seed(0)
    spec = yaml_model_load("yolov8n.yaml")
    spec["scales"] = {"n": [0.33, 0.125, 1024]}
    model = DetectionModel(spec, nc=len(SIGN_CLASSES), verbose=False)
    model.names = dict(enumerate(SIGN_CLASSES))
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = None  # the plain mean over the batches
    model.train()
    with torch.no_grad():
        for batch in calibration_batches(data, 64, 16, 4):
            model(torch.from_numpy(batch))
    return model.eval()


def plant_outlier(model: torch.nn.Module) -> None:
    """A huge weight in every output channel of ``PLANTED``, on an input channel its producer keeps at zero:
    the float model computes the same, but each channel's INT8 scale is so coarse its weights round to 0."""
    producer, conv = model.get_submodule("model.22.cv3.0.0"), model.get_submodule(PLANTED)
    with torch.no_grad():
        producer.bn.weight[0], producer.bn.bias[0] = 0.0, 0.0  # SiLU(0) = 0: channel 0 is always zero
        conv.weight[:, 0, 1, 1] = 1e4


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_dataset) -> dict:
    """The planted FP32 checkpoint and a PTQ-calibrated (quantized) checkpoint of the clean model."""
    folder = tmp_path_factory.mktemp("analyze_inputs")
    model = narrow_model(str(tiny_dataset))
    quantized, _ = calibrated_model(model, QuantConfig(), calibration_batches(str(tiny_dataset), 64, 8, 4))
    save_checkpoint(folder / "int8.pt", quantized, 64)
    plant_outlier(model)
    save_checkpoint(folder / "fp32.pt", model, 64)
    return {"fp32": folder / "fp32.pt", "checkpoint": folder / "int8.pt", "folder": folder}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cli_tools, inputs, tiny_dataset) -> dict:
    """analyze of both inputs: the FP32 .pt with every flag of the command set, the checkpoint with few."""
    run_cli = cli_tools[0]
    folder = tmp_path_factory.mktemp("analyze_runs")
    fp32 = run_cli(["analyze", "--weights", inputs["fp32"], "--data", tiny_dataset, "--out", folder / "fp32",
                    "--imgsz", 64, "--images", 4, "--batch", 2, "--calib-images", 8, "--worst", WORST,
                    "--device", "cpu", "--opset", 17, "--no-export.simplify"], folder)  # fmt: skip
    checkpoint = run_cli(["analyze", "--weights", inputs["checkpoint"], "--data", tiny_dataset,
                          "--out", folder / "checkpoint", "--images", 4, "--batch", 4], folder)  # fmt: skip
    return {"fp32": fp32, "checkpoint": checkpoint}


def _report(run) -> dict:
    assert run.code == 0, run.err
    return json.loads((run.folder / run.argv[run.argv.index("--out") + 1] / "report.json").read_text())


@pytest.mark.parametrize("kind", ["fp32", "checkpoint"])
def test_report_md_json_and_plots_are_written(runs, kind):
    run = runs[kind]
    report = _report(run)
    out = run.folder / kind
    assert run.out.strip().splitlines()[-1] == str(out / "report.md")  # the last line: the report
    for name in ("report.md", "sqnr.png", "fp32.onnx", "int8.onnx", "fp32.onnx.json", "int8.onnx.json"):
        assert (out / name).stat().st_size > 0, name
    worst = report["plots"]["worst"]
    assert list(worst) == [r["name"] for r in report["worst"]]
    assert sorted(p.name for p in out.glob("worst*.png")) == sorted(worst.values())
    md = (out / "report.md").read_text()
    assert all(f"]({png})" in md for png in [*worst.values(), "sqnr.png"])
    assert report["config"]["weights"] == run.argv[2] and report["imgsz"] == 64


@pytest.mark.parametrize("kind", ["fp32", "checkpoint"])
def test_the_numbers_agree_with_each_other_and_the_files(runs, kind):
    report, out = _report(runs[kind]), runs[kind].folder / kind
    convs, sizes = report["convs"], report["sizes"]
    assert convs["quantized"] + convs["float"] == convs["total"] == convs["onnx_total"]
    assert convs["quantized"] == convs["onnx_quantized"] == len(report["layers"])
    assert set(convs["float_layers"]) == TAIL  # the Detect head's float tail, nothing else
    sqnr = [r["sqnr_db"] for r in report["worst"]]
    expected = min(report["config"]["worst"], len(report["layers"]))
    assert sqnr == sorted(sqnr) and len(sqnr) == expected
    assert report["worst"] == sorted(report["layers"], key=lambda r: r["sqnr_db"])[:expected]
    for key in ("fp32_onnx", "int8_onnx"):
        assert sizes[key]["bytes"] == (out / f"{key.split('_')[0]}.onnx").stat().st_size
    trt = sizes["tensorrt_weights_estimate"]
    assert trt["int8_bytes"] < trt["fp32_bytes"] / 2 and "BatchNorm folded" in trt["method"]
    md = (out / "report.md").read_text()
    assert f"{convs['quantized']} of {convs['total']} convs quantized" in md
    assert f"({sizes['int8_onnx']['bytes']} B)" in md and f"({trt['int8_bytes']} B)" in md
    ranked = [line.split("`")[1] for line in md.split("## The worst")[1].split("## Every")[0].splitlines()
              if line.startswith("| ") and "`" in line]  # fmt: skip
    assert ranked == [r["name"] for r in report["worst"]]


def test_tensorrt_estimate_counts_int8_weights_and_float_rest(runs, inputs):
    """The estimate, recomputed from the checkpoint: 1 byte per quantized weight, 4 per bias, scale and float weight."""
    model, report = load_model(inputs["checkpoint"]), _report(runs["checkpoint"])
    fp32 = int8 = 0
    for name, conv in ((n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)):
        w, b = conv.weight.numel(), conv.out_channels
        fp32 += 4 * (w + b)
        int8 += 4 * (w + b) if name in TAIL else w + 4 * (b + conv.out_channels)  # per-channel weight scales
    estimate = report["sizes"]["tensorrt_weights_estimate"]
    assert (estimate["fp32_bytes"], estimate["int8_bytes"]) == (fp32, int8)


def test_a_quantized_checkpoint_is_analyzed_as_it_is(runs, inputs, tiny_dataset):
    report = _report(runs["checkpoint"])
    assert report["int8_model"].startswith("the checkpoint's own quantizers")
    model = load_model(inputs["checkpoint"])
    (batch,) = calibration_batches(str(tiny_dataset), 64, 4, 4, split="val")  # the run's one batch
    direct = sqnr_per_layer(model, torch.from_numpy(batch))
    got = {r["name"]: r["sqnr_db"] for r in report["layers"]}
    assert got.keys() == direct.keys()
    np.testing.assert_allclose(list(got.values()), [direct[n] for n in got], rtol=1e-6)


def test_a_planted_weight_outlier_is_the_worst_layer(runs):
    report = _report(runs["fp32"])
    assert report["int8_model"] == "PTQ, calibrated here on 8 train images"
    first, second = report["worst"][:2]
    assert first["name"] == PLANTED and first["weight_absmax"] == pytest.approx(1e4)
    assert abs(first["sqnr_db"]) < 0.1  # every weight rounds to zero: the error is the whole signal
    assert second["sqnr_db"] > first["sqnr_db"] + 1  # the next worst (the deepest head layers): about 2 dB
    assert (runs["fp32"].folder / "fp32" / f"worst01-{PLANTED}.png").is_file()


def test_every_setting_of_analyze_is_read(runs):
    from toolchain.export.onnx import ExportConfig

    reads = runs["fp32"].reads
    for cls in (AnalyzeConfig, ExportConfig):
        unread = {f for f in cls.__dataclass_fields__ if (cls, f) not in reads}
        assert not unread, (cls.__name__, unread)


def _one_line(capsys, argv: list, code: int) -> str:
    from toolchain.cli import main

    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    *warnings, last = err.rstrip("\n").split("\n")
    assert last.startswith("error: ") and all(w.startswith("warning:") for w in warnings), err
    return last


def test_mistakes_are_one_line(capsys, tmp_path, inputs, tiny_dataset, tiny_checkpoint):
    missing = _one_line(capsys, ["analyze", "--weights", tmp_path / "none.pt", "--data", tiny_dataset], 2)
    assert "--weights" in missing and "none.pt" in missing
    (tmp_path / "images").mkdir()
    (tmp_path / "data.yaml").write_text("train: images\nval: images\nnames: [a, b, c]\n")
    classes = _one_line(capsys, ["analyze", "--weights", inputs["fp32"], "--data", tmp_path / "data.yaml",
                                 "--out", tmp_path / "out"], 1)  # fmt: skip
    assert "the model has 10 classes" in classes and "data.yaml has 3 ['a', 'b', 'c']" in classes
    uncalibrated = load_model(inputs["fp32"])
    quantize_model(uncalibrated, QuantConfig())
    save_checkpoint(tmp_path / "uncalibrated.pt", uncalibrated, 64)
    said = _one_line(capsys, ["analyze", "--weights", tmp_path / "uncalibrated.pt", "--data", tiny_dataset,
                              "--out", tmp_path / "out"], 1)  # fmt: skip
    assert "none with a calibrated weight quantizer" in said
    zero = _one_line(capsys, ["analyze", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--worst", 0], 2)
    assert "--worst 0" in zero
    assert not (tmp_path / "out").exists()
