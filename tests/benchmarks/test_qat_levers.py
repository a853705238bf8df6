"""The QAT levers comparison: lever flags parsed, finished runs reused and interrupted ones resumed,
every lever scored against FP32 and the first lever on shared resamples, and the goal's verdict."""

from __future__ import annotations

import argparse
import json
import subprocess
from types import SimpleNamespace

import pytest

from base.errors import UsageError
from benchmarks import qat_levers
from deploy.bootstrap import Difference
from tests.toolchain.training.test_qat_report import _scored


def _diff(metric: str, delta: float, low: float, high: float) -> Difference:
    return Difference(metric, delta, low, high, 0.95, 100, 70)


def test_levers_are_added_replaced_and_chosen():
    levers = qat_levers.levers_from(["lr0-1e-4=--lr0 1e-4", "distill=--train.loss.distill 2 --epochs 3"], None)
    assert levers["lr0-1e-4"] == ["--lr0", "1e-4"]
    assert levers["distill"] == ["--train.loss.distill", "2", "--epochs", "3"]
    assert list(qat_levers.levers_from([], ["distill", "default"])) == ["distill", "default"]


@pytest.mark.parametrize("extra, only, message", [
    (["--lr0 1e-4"], None, "expected NAME=FLAGS"),
    (["=--lr0 1e-4"], None, "expected NAME=FLAGS"),
    ([], ["default", "warp"], "--only warp: no such lever"),
])  # fmt: skip
def test_a_malformed_lever_is_one_usage_line(extra, only, message):
    with pytest.raises(UsageError, match=message):
        qat_levers.levers_from(extra, only)


@pytest.mark.parametrize("small, overall, met", [
    ((-0.009, -0.02, 0.004), (-0.001, -0.01, 0.008), True),   # small within 1 point, mAP within noise
    ((-0.011, -0.03, 0.002), (+0.002, -0.01, 0.010), False),  # small 1.1 points below FP32
    ((+0.004, -0.01, 0.020), (-0.012, -0.02, -0.004), False),  # a real mAP loss
    ((+0.004, -0.01, 0.020), (+0.012, +0.004, 0.020), True),  # a real mAP gain
])  # fmt: skip
def test_goal_needs_small_ap_within_a_point_and_no_real_map_loss(small, overall, met):
    vs_fp32 = {"ap_small": _diff("ap_small", *small), "map50_95": _diff("map50_95", *overall)}
    assert qat_levers.goal_met(vs_fp32) is met


def test_a_finished_run_is_reused_and_an_interrupted_one_resumed(tmp_path, monkeypatch):
    (tmp_path / "p-done").mkdir()
    (tmp_path / "p-done" / "report.json").write_text("{}")
    (tmp_path / "p-cut" / "weights").mkdir(parents=True)
    (tmp_path / "p-cut" / "weights" / "last.pt").write_bytes(b"x")
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    args = argparse.Namespace(
        project=str(tmp_path), config="configs/qat.yaml", weights="w.pt", data="d.yaml", force=False
    )
    qat_levers.run_lever("p-done", ["--epochs", "9"], args)
    assert calls == []
    qat_levers.run_lever("p-cut", ["--epochs", "9"], args)
    qat_levers.run_lever("p-new", ["--lr0", "1e-4"], args)
    assert calls[0][-4:] == ["p-cut", "--epochs", "9", "--resume"]
    assert calls[1][-3:] == ["p-new", "--lr0", "1e-4"]
    args.force = True
    qat_levers.run_lever("p-done", [], args)
    assert calls[2][-1] == "p-done"


def test_a_failed_run_says_how_to_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda cmd: subprocess.CompletedProcess(cmd, 3))
    args = argparse.Namespace(project=str(tmp_path), config="c.yaml", weights="w.pt", data="d.yaml", force=False)
    with pytest.raises(Exception, match="lever p-x: toolchain qat exited 3; rerun this command to resume it"):
        qat_levers.run_lever("p-x", [], args)


def test_levers_are_scored_against_fp32_and_the_first_on_the_same_images(tmp_path, monkeypatch, capsys):
    """Three finished runs are reused, scored (made-up detections on 40 images) and tabled: each
    difference is the difference of the table on shared resamples, a lever equal to the first differs
    by exactly 0, and the verdict follows the goal."""
    scored = {
        "fp32": _scored(0.02, 0),
        "default": _scored(0.12, 1),
        "same": _scored(0.12, 1),
        "close": _scored(0.03, 2),
    }
    for name in ("default", "same", "close"):
        (tmp_path / f"t-{name}").mkdir()
        (tmp_path / f"t-{name}" / "report.json").write_text("{}")
    monkeypatch.setattr(qat_levers, "report_split", lambda data: SimpleNamespace(name="test"))
    monkeypatch.setattr(qat_levers, "evaluate_onnx", lambda paths, split: {
        k: scored["fp32" if k == "FP32" else p.parent.name[2:]] for k, p in paths.items()})  # fmt: skip
    out = tmp_path / "levers.md"
    code = qat_levers.main(["--data", "d.yaml", "--weights", "w.pt", "--project", str(tmp_path), "--prefix", "t",
                            "--lever", "same=--epochs 2", "--lever", "close=--lr0 1e-5",
                            "--only", "default", "same", "close", "--resamples", "100", "--out", str(out)])  # fmt: skip
    assert code == 0
    table = json.loads(out.with_suffix(".json").read_text())
    assert (table["split"], table["images"], table["optimistic"], table["first"]) == ("test", 40, False, "default")
    rows = table["levers"]
    assert rows["same"]["flags"] == ["--epochs", "2"] and rows["default"]["vs_first"] is None
    for metric in ("map50_95", "ap_small"):
        same = rows["same"]["vs_first"][metric]
        assert (same["delta"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
        for row in rows.values():
            d = row["vs_fp32"][metric]
            assert d["delta"] == pytest.approx(row["results"][metric] - table["fp32"][metric], abs=1e-12)
            assert d["low"] <= d["delta"] <= d["high"] and d["images"] == 40
    assert rows["default"]["vs_fp32"]["map50_95"]["real"] and not rows["default"]["goal"]
    assert rows["close"]["goal"] is qat_levers.goal_met(
        {m: Difference(**{k: v for k, v in d.items() if k != "real"}) for m, d in rows["close"]["vs_fp32"].items()}
    )
    text = out.read_text()
    assert "| same | --epochs 2 |" in text and "| default | (config) |" in text and "not met |" in text
    assert text.strip() in capsys.readouterr().out
