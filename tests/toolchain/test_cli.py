"""The command line: one line per user error, exit 1, no traceback."""

from __future__ import annotations

import pytest

from toolchain.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_missing_data_yaml(capsys, tmp_path):
    code, _, err = _run(capsys, "check-data", "--data", str(tmp_path / "data.yaml"))
    assert code == 1 and err.count("\n") == 1 and "data.yaml not found" in err and "Traceback" not in err


def test_missing_weights(capsys, tmp_path, tiny_dataset):
    code, _, err = _run(capsys, "eval", "--weights", str(tmp_path / "nope.pt"), "--data", str(tiny_dataset))
    assert code == 1 and "nope.pt: weights not found" in err


def test_config_with_unknown_key(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epoch: 3\n")
    code, _, err = _run(capsys, "baseline", "--config", str(cfg))
    assert code == 1 and "unknown key(s) ['epoch']" in err and "'epochs'" in err


def test_check_data_summary_and_strict(capsys, tmp_path, tiny_dataset):
    code, out, _ = _run(capsys, "check-data", "--data", str(tiny_dataset))
    assert code == 0 and "train: 24 images" in out and "val: 8 images" in out and "speed_limit" in out
    bad = tmp_path / "labels" / "val"
    bad.mkdir(parents=True)
    (tmp_path / "images" / "val").mkdir(parents=True)
    import shutil

    src = next((tiny_dataset.parent / "images" / "val").iterdir())
    shutil.copy(src, tmp_path / "images" / "val" / "a.jpg")
    (bad / "a.txt").write_text("12 0.5 0.5 0.1 0.1\n")
    (tmp_path / "data.yaml").write_text("train: images/val\nval: images/val\nnames: [x, y]\n")
    code, out, _ = _run(capsys, "check-data", "--data", str(tmp_path / "data.yaml"), "--split", "val")
    assert code == 0 and "1 skipped" in out
    code, _, err = _run(capsys, "check-data", "--data", str(tmp_path / "data.yaml"), "--strict")
    assert code == 1 and "a.txt:1: class id 12 out of range" in err


def test_eval_of_an_onnx_model(capsys, tmp_path, tiny_checkpoint, tiny_dataset):
    code, out, _ = _run(capsys, "export", "--weights", str(tiny_checkpoint), "--out", str(tmp_path / "m.onnx"))
    assert code == 0
    report = tmp_path / "eval.json"
    code, out, _ = _run(capsys, "eval", "--weights", str(tmp_path / "m.onnx"), "--data", str(tiny_dataset),
                        "--json", str(report))  # fmt: skip
    assert code == 0 and "mAP50-95" in out and "via onnxruntime" in out
    assert '"map50_95"' in report.read_text()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_eval_backends_agree_on_fp32(capsys, tmp_path, tiny_checkpoint, tiny_dataset, backend):
    _run(capsys, "export", "--weights", str(tiny_checkpoint), "--out", str(tmp_path / "m.onnx"))
    code, out, _ = _run(capsys, "eval", "--weights", str(tmp_path / "m.onnx"), "--data", str(tiny_dataset),
                        "--backend", backend)  # fmt: skip
    assert code == 0 and f"via {backend}" in out
