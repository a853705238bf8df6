"""The command line: flags and config files, every mistake one line and exit 2 before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from toolchain.cli import main


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_usage_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


@pytest.fixture()
def files(tmp_path):
    """An existing weights and data path (the checks run before anything reads them)."""
    (tmp_path / "w.pt").write_bytes(b"")
    (tmp_path / "d.yaml").write_text("train: x\n")
    return tmp_path


def _required(command: str, files) -> list:
    """The flags a command cannot run without, set to existing files."""
    from toolchain.commands import COMMANDS

    flags = COMMANDS[command].flags()
    given = {"weights": files / "w.pt", "train.data": files / "d.yaml", "data": files / "d.yaml"}
    return [a for key, path in given.items() if key in flags for a in (flags[key][0], path)]


def _yaml(folder, name: str, text: str):
    path = folder / name
    path.write_text(text)
    return path


BAD_CONFIGS = [
    # (command, config file text, where the mistake is named, what is said)
    ("qat", "train:\n  lr0: [1\n", "c.yaml:3:1", "not valid YAML"),
    ("qat", "quant:\n  input:\n    percentile: high\n", "quant.input.percentile", "expected a number in (0, 100], got 'high'"),
    ("qat", "quant:\n  overrides:\n    - skip: true\n", "quant.overrides[0].pattern", "required"),
    ("qat", "quant:\n  overrides: {pattern: x, skip: true}\n", "quant.overrides", "expected a list"),
    ("qat", "train:\n  lr0: -0.01\n", "train.lr0", "expected a number > 0, got -0.01"),
    ("qat", "qat:\n  progressive: {0: 'model\\.(1'}\n", "qat.progressive[0]", "not a valid regular expression"),
    ("qat", "train:\n  ema_decay: 1.5\n", "train.ema_decay", "in [0, 1), got 1.5"),
    ("qat", "train:\n  epoch: 3\n", "train.epoch", "unknown key; allowed here: ['data', 'imgsz', 'epochs'"),
    ("qat", "train: 5\n", "train", "expected a mapping, got 5"),
    ("qat", "train:\n  augment: {blur: 1}\n", "train.augment['blur']", "not an augmentation setting"),
    ("qat", "quant:\n  target: generic\n  input: {num_bits: 4, calibrator: max}\n", "quant.input.num_bits",
     "ONNX Q/DQ export needs 8"),
    ("qat", "quant:\n  input: {symmetric: false}\n", "quant.input.symmetric", "TensorRT takes only symmetric int8"),
    ("qat", "train:\n  loss: {distill_features: true}\n", "train.loss.distill_features", "needs distill > 0"),
    ("ptq", "quant:\n  fold_bn: before_qat\n", "quant.fold_bn", "unknown key"),
    ("ptq", "- a\n- b\n", "c.yaml", "expected a mapping of keys to values at the top"),
    ("ptq", "version: 7\n", "c.yaml", "schema version 7"),
    ("eval", "postprocess: {iou: 5}\n", "postprocess", "conf and iou must lie in [0, 1]"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "text", "where", "said"), BAD_CONFIGS)
def test_a_config_mistake_is_one_line_exit_2_before_any_work(capsys, files, runs_nothing, command, text, where, said):
    config = _yaml(files, "c.yaml", text)
    code, _, err = _run(capsys, command, "--weights", files / "w.pt", "--data", files / "d.yaml", "--config", config)
    err = _one_line_usage_error(code, err)
    assert str(config) in err and where in err and said in err
    assert runs_nothing == []


BAD_FLAGS = [
    (["eval", "--iou", "5"], "--iou 5: postprocess: conf and iou must lie in [0, 1]"),
    (["ptq", "--batch", "0"], "--batch 0: expected an integer >= 1, got 0"),
    (["ptq", "--num-images", "many"], "--num-images many: expected an integer >= 1, got 'many'"),
    (["qat", "--lr0", "-0.01"], "--lr0 -0.01: expected a number > 0"),
    (["qat", "--progressive", "{0: '('}"], "qat.progressive[0]: '(' is not a valid regular expression"),
    (["qat", "--quant.input.percentile", "high"], "--quant.input.percentile high: expected a number"),
    (["qat", "--schedule", "{name: warm}"], "train.schedule.name: expected one of ['cosine'"),
    (["qat", "--loss", "[1, 2]"], "--loss [1, 2]: expected a YAML mapping"),
    (["qat", "--imgsz", "100"], "--imgsz 100: expected an integer >= 32, a multiple of 32"),
    (["ptq", "--fp32", "--out", "model.onnx"], "--out model.onnx: with fp32 the name must contain .int8"),
    (["ptq", "--quant-config", "missing.yaml"], "missing.yaml: config file not found"),
    (["eval", "--con", "0.25"], "unrecognized arguments: --con"),  # no abbreviations
    (["baseline", "--epochs", "0"], "--epochs 0: expected an integer >= 1"),
    (["baseline", "--model", "missing.pt"], "--model missing.pt: missing.pt: weights not found"),
    (["data", "--train", "0"], "synthetic"),
    (["qat", "--augment", "{fliplr:0}"], "train.augment['fliplr:0']: not an augmentation setting; expected one of"),
    (["qat", "--augment", "{fliplr: 2}"], "train.augment['fliplr']: 'fliplr=2' is an invalid value"),
    (["qat", "--augment", "{hsv_h: x}"], "train.augment['hsv_h']: 'hsv_h=x' is of invalid type str"),
    (["qat", "--augment", "{mosaic: 0.5}"], "mosaic is a setting of its own: use --mosaic"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "said"), BAD_FLAGS)
def test_a_flag_mistake_is_one_line_exit_2_before_any_work(capsys, files, runs_nothing, argv, said):
    command, *rest = argv
    code, _, err = _run(capsys, command, *_required(command, files), *rest)
    assert said in _one_line_usage_error(code, err)
    assert runs_nothing == []


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["eval", "--json", "{file}/m.json"], "cannot write {file}/m.json: {file} is a file, not a folder"),
        (["eval", "--json", "m.txt"], "--json m.txt: expected a file name ending in .json"),
        (["ptq", "--out", "{file}/deep/m.int8.onnx"], "is a file, not a folder"),
        (["export", "--out", "m.int8.pt"], "expected a file name ending in .onnx"),
        (["sensitivity", "--out", "{file}"], "is a file; expected a folder"),
        (["qat", "--project", "{file}/runs"], "is a file, not a folder"),
        (["baseline", "--project", "{file}"], "is a file; expected a folder"),
        (["data", "--out", "{file}/syn"], "is a file, not a folder"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_work(capsys, files, runs_nothing, argv, said):
    command, *rest = argv
    rest = [a.format(file=files / "w.pt") for a in rest]
    code, _, err = _run(capsys, command, *_required(command, files), *rest)
    assert said.format(file=files / "w.pt") in _one_line_usage_error(code, err)
    assert runs_nothing == []


def test_missing_and_required_are_named(capsys, files, runs_nothing):
    code, _, err = _run(capsys, "qat", "--data", files / "d.yaml")
    assert "--weights is required" in _one_line_usage_error(code, err)
    code, _, err = _run(capsys, "check-data", "--data", files / "nope.yaml")
    assert "--data" in _one_line_usage_error(code, err) and "file not found" in err
    code, _, err = _run(capsys, "eval", "--weights", files / "nope.pt", "--data", files / "d.yaml")
    assert "nope.pt" in _one_line_usage_error(code, err)
    assert runs_nothing == []


def test_partial_sections_keep_their_defaults(capsys, files, runs_nothing):
    config = _yaml(files, "c.yaml", "quant:\n  input: {percentile: 99.9}\ntrain:\n  schedule: {lrf: 0.1}\n")
    assert _run(capsys, "qat", "--weights", files / "w.pt", "--data", files / "d.yaml", "--config", config)[0] == 0
    (cfg,) = runs_nothing
    assert cfg.quant.input.calibrator == "histogram_percentile" and cfg.quant.input.percentile == 99.9
    assert cfg.quant.weight.axis == 0 and cfg.train.schedule.name == "cosine" and cfg.train.schedule.lrf == 0.1
    assert cfg.train.epochs == 5  # the QAT default, from TrainConfig alone


def test_precedence_defaults_config_section_file_section_flag_value_flag(capsys, files, runs_nothing):
    config = _yaml(files, "c.yaml", "train:\n  lr0: 0.1\n  epochs: 3\n  loss: {box: 1.0, cls: 2.0}\nquant:\n"
                   "  overrides: [{pattern: a, skip: true}, {pattern: b, skip: true}]\n")  # fmt: skip
    quant = _yaml(files, "q.yaml", "overrides: [{pattern: c}]\ninput: {percentile: 99.0}\n")
    code, _, err = _run(capsys, "qat", "--config", config, "--weights", files / "w.pt", "--data", files / "d.yaml",
                        "--quant-config", quant, "--loss", "{cls: 3.0}", "--train.loss.cls", "4.0", "--lr0", "0.2")  # fmt: skip
    assert code == 0, err
    (cfg,) = runs_nothing
    assert cfg.train.lr0 == 0.2 and cfg.train.epochs == 3  # the flag over the file, the file over the default
    assert cfg.train.loss.box == 1.0 and cfg.train.loss.cls == 4.0  # sections merge key by key
    assert [o.pattern for o in cfg.quant.overrides] == ["c"]  # lists replace
    assert cfg.quant.input.percentile == 99.0 and cfg.quant.input.calibrator == "histogram_percentile"


def test_conf_is_not_taken_for_config(capsys, files, runs_nothing):
    code, _, err = _run(capsys, "eval", "--weights", files / "w.pt", "--data", files / "d.yaml", "--conf", "0.25")
    assert code == 0, err
    assert runs_nothing[0].postprocess.conf == 0.25 and runs_nothing[0].postprocess.iou == 0.7


def test_settings_qat_could_not_reach_before(capsys, files, runs_nothing):
    argv = ["qat", "--weights", files / "w.pt", "--data", files / "d.yaml", "--threads", "3", "--val-images", "5",
            "--no-amp", "--no-sqnr", "--quant.target", "generic", "--quant.input.symmetric", "--no-export.simplify"]  # fmt: skip
    assert _run(capsys, *argv)[0] == 0
    (cfg,) = runs_nothing
    assert (cfg.train.threads, cfg.train.val_images, cfg.train.amp, cfg.sqnr) == (3, 5, False, False)
    assert cfg.quant.target == "generic" and not cfg.export.simplify


def test_help_shows_generated_flags_with_their_doc_lines(capsys):
    assert main(["qat", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--lr0 X, --train.lr0 X" in out and "Base learning rate" in out and "default: 0.0002" in out
    assert "--quant.input.percentile X" in out and "--threads N, --train.threads N" in out
    assert "--quant-config FILE" in out and "--config FILE" in out
    assert main(["--help"]) == 0 and "--config FILE.yaml" in capsys.readouterr().out


def test_check_qdq_is_deploys(capsys, export_run):
    code, out, _ = _run(capsys, "check-qdq", export_run.folder / "m.onnx", "--allow-float")
    assert code == 0 and "m.onnx" in out
    code, out, _ = _run(capsys, "check-qdq", "--help")
    assert code == 0 and "usage: check-qdq" in out and "--allow-float" in out
    code, _, err = _run(capsys, "check-qdq", export_run.folder / "missing.onnx")
    assert code == 1 and "missing.onnx" in err and err.count("\n") == 1


def test_check_data_summary_and_strict(capsys, tmp_path, tiny_dataset, check_data_run):
    assert check_data_run.code == 0 and "val: 8 images" in check_data_run.out and "train:" not in check_data_run.out
    code, out, _ = _run(capsys, "check-data", "--data", tiny_dataset)
    assert code == 0 and "train: 24 images" in out and "speed_limit" in out
    labels, images = tmp_path / "labels" / "val", tmp_path / "images" / "val"
    labels.mkdir(parents=True)
    images.mkdir(parents=True)
    import shutil

    for name, src in zip(("a", "b"), sorted((tiny_dataset.parent / "images" / "val").iterdir())):
        shutil.copy(src, images / f"{name}.jpg")
    (labels / "a.txt").write_text("12 0.5 0.5 0.1 0.1\n")
    (labels / "b.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data.yaml").write_text("train: images/val\nval: images/val\nnames: [x, y]\n")
    code, out, _ = _run(capsys, "check-data", "--data", tmp_path / "data.yaml", "--split", "val")
    assert code == 0 and "1 skipped" in out
    code, _, err = _run(capsys, "check-data", "--data", tmp_path / "data.yaml", "--strict")
    assert code == 1 and "a.txt:1: class id 12 out of range" in err


def test_eval_of_pt_and_onnx_reports_the_size_it_ran_at(eval_runs):
    pt, onnx = eval_runs
    assert pt.code == 0 and "at 64 px via pytorch" in pt.out, pt.err
    assert onnx.code == 0 and "at 64 px via openvino" in onnx.out, onnx.err
    report = json.loads((pt.folder / "onnx.json").read_text())
    assert report["imgsz"] == 64 and "map50_95" in report and report["config"]["backend"] == "openvino"


def test_imgsz_on_a_static_onnx_is_refused_and_on_a_pt_honoured(capsys, export_run, tiny_checkpoint, tiny_dataset):
    code, _, err = _run(capsys, "eval", "--weights", export_run.folder / "m.onnx", "--data", tiny_dataset, "--imgsz", 96)
    assert "--imgsz 96: " in _one_line_usage_error(code, err) and "takes 64x64 images only" in err
    code, out, _ = _run(capsys, "eval", "--weights", tiny_checkpoint, "--data", tiny_dataset, "--imgsz", 96)
    assert code == 0 and "at 96 px via pytorch" in out


def test_onnx_runtime_and_openvino_compute_the_same_fp32_outputs(export_run, tiny_dataset):
    from deploy.runtime import create_runner
    from toolchain.quantization.calibration import calibration_batches

    batch = calibration_batches(str(tiny_dataset), 64, 2, 2, split="val")[0]
    outputs = []
    for backend in ("onnxruntime", "openvino"):
        with create_runner(export_run.folder / "m.onnx", backend) as runner:
            outputs.append(np.concatenate([runner.infer(b[None])[0] for b in batch]))
    ort, ov = outputs
    assert ort.shape == (2, 14, 84)
    assert np.linalg.norm(ov - ort) <= 1e-4 * np.linalg.norm(ort)


@pytest.mark.parametrize(("command", "model"), [("eval", "pt"), ("eval", "onnx"), ("ptq", "pt"), ("sensitivity", "pt")])
def test_a_model_of_other_classes_than_the_data_is_refused(capsys, tmp_path, tiny_checkpoint, export_run, model, command):
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text("train: images/val\nval: images/val\nnames: [a, b, c]\n")
    weights = tiny_checkpoint if model == "pt" else export_run.folder / "m.onnx"
    code, _, err = _run(capsys, command, "--weights", weights, "--data", tmp_path / "data.yaml")
    *warnings, last = err.rstrip("\n").split("\n")
    assert code == 1 and last.startswith("error:") and all(w.startswith("warning:") for w in warnings), err
    assert f"{weights}: the model has 10 classes ['no_entry'" in err and "data.yaml has 3 ['a', 'b', 'c']" in err
