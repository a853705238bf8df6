"""The QAT levers comparison: lever flags parsed, finished runs reused and interrupted ones resumed,
every lever scored against FP32 and PTQ on shared resamples, and the goal's verdict."""

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


def test_without_only_the_hard_case_levers_run_and_teacher_with_a_teacher():
    assert tuple(qat_levers.levers_from([], None)) == qat_levers.HARD_CASE
    levers = qat_levers.levers_from(["x=--epochs 2"], None, teacher="s.pt")
    assert list(levers) == [*qat_levers.HARD_CASE, "teacher", "x"]
    assert levers["teacher"][:2] == ["--teacher", "s.pt"]


@pytest.mark.parametrize("extra, only, message", [
    (["--lr0 1e-4"], None, "expected NAME=FLAGS"),
    (["=--lr0 1e-4"], None, "expected NAME=FLAGS"),
    ([], ["default", "warp"], "--only warp: no such lever"),
])  # fmt: skip
def test_a_malformed_lever_is_one_usage_line(extra, only, message):
    with pytest.raises(UsageError, match=message):
        qat_levers.levers_from(extra, only)


@pytest.mark.parametrize("overall, gain, small, met", [
    ((-0.002, -0.006, 0.002), (0.010, 0.004, 0.016), (-0.009, -0.02, 0.004), True),  # the goal
    ((-0.004, -0.009, 0.001), (0.010, 0.004, 0.016), (-0.009, -0.02, 0.004), False),  # 0.4 points below FP32
    ((-0.002, -0.004, -0.001), (0.010, 0.004, 0.016), (-0.009, -0.02, 0.004), False),  # a real loss to FP32
    ((-0.002, -0.006, 0.002), (0.004, -0.001, 0.009), (-0.009, -0.02, 0.004), False),  # not above PTQ beyond noise
    ((-0.002, -0.006, 0.002), (0.010, 0.004, 0.016), (-0.011, -0.03, 0.002), False),  # AP small 1.1 points below
    ((+0.004, -0.001, 0.009), (0.010, 0.004, 0.016), (+0.004, -0.01, 0.02), True),  # above FP32 within noise
])  # fmt: skip
def test_goal_is_the_issues_near_fp32_above_ptq_and_small_ap_within_a_point(overall, gain, small, met):
    vs_fp32 = {"map50_95": _diff("map50_95", *overall), "ap_small": _diff("ap_small", *small)}
    vs_ptq = {"map50_95": _diff("map50_95", *gain), "ap_small": _diff("ap_small", 0, 0, 0)}
    assert qat_levers.goal_met(vs_fp32, vs_ptq) is met


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


def test_levers_are_scored_against_fp32_and_ptq_on_the_same_images(tmp_path, monkeypatch, capsys):
    """Three finished runs are reused, scored (made-up detections on 40 images) and tabled with the
    first run's PTQ: each difference is the difference of the table on shared resamples, a lever that
    scores as PTQ differs from it by exactly 0, and the verdict follows the goal."""
    scored = {
        "fp32": _scored(0.02, 0),
        "ptq": _scored(0.03, 2),
        "default": _scored(0.12, 1),
        "same": _scored(0.03, 2),
        "close": _scored(0.025, 3),
    }
    for name in ("default", "same", "close"):
        (tmp_path / f"t-{name}").mkdir()
        (tmp_path / f"t-{name}" / "report.json").write_text("{}")

    def evaluate(paths, split):
        assert paths["PTQ INT8"] == tmp_path / "t-default" / "ptq.int8.onnx"
        return {k: scored["fp32" if k == "FP32" else "ptq" if k == "PTQ INT8" else p.parent.name[2:]]
                for k, p in paths.items()}  # fmt: skip

    monkeypatch.setattr(qat_levers, "report_split", lambda data: SimpleNamespace(name="test"))
    monkeypatch.setattr(qat_levers, "evaluate_onnx", evaluate)
    out = tmp_path / "levers.md"
    code = qat_levers.main(["--data", "d.yaml", "--weights", "w.pt", "--project", str(tmp_path), "--prefix", "t",
                            "--lever", "same=--epochs 2", "--lever", "close=--lr0 1e-5",
                            "--only", "default", "same", "close", "--resamples", "100", "--out", str(out)])  # fmt: skip
    assert code == 0
    table = json.loads(out.with_suffix(".json").read_text())
    assert (table["split"], table["images"], table["optimistic"], table["first"]) == ("test", 40, False, "default")
    rows = table["levers"]
    assert rows["same"]["flags"] == ["--epochs", "2"]
    for metric in ("map50_95", "ap_small"):
        same = rows["same"]["vs_ptq"][metric]
        assert (same["delta"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
        ptq = table["ptq"]["vs_fp32"][metric]
        assert ptq["delta"] == pytest.approx(table["ptq"]["results"][metric] - table["fp32"][metric], abs=1e-12)
        for row in rows.values():
            for key, ref in (("vs_fp32", table["fp32"]), ("vs_ptq", table["ptq"]["results"])):
                d = row[key][metric]
                assert d["delta"] == pytest.approx(row["results"][metric] - ref[metric], abs=1e-12)
                assert d["low"] <= d["delta"] <= d["high"] and d["images"] == 40
    assert rows["default"]["vs_fp32"]["map50_95"]["real"] and not rows["default"]["goal"]

    def undict(row, key):
        return {m: Difference(**{k: v for k, v in d.items() if k != "real"}) for m, d in row[key].items()}

    close = rows["close"]
    assert close["goal"] is qat_levers.goal_met(undict(close, "vs_fp32"), undict(close, "vs_ptq"))
    text = out.read_text()
    assert "| same | --epochs 2 |" in text and "| default | (config) |" in text and "not met |" in text
    assert "| PTQ INT8 | (default's calibration) |" in text
    assert text.strip() in capsys.readouterr().out


def test_seeds_make_a_row_per_seed_and_a_mean_row_per_lever():
    rows, means = qat_levers.seeded({"default": [], "penalty": ["--train.loss.quant-penalty", "10"]}, [0, 1, 2])
    assert rows == {
        "default": ["--seed", "0"], "default-seed1": ["--seed", "1"], "default-seed2": ["--seed", "2"],
        "penalty": ["--train.loss.quant-penalty", "10", "--seed", "0"],
        "penalty-seed1": ["--train.loss.quant-penalty", "10", "--seed", "1"],
        "penalty-seed2": ["--train.loss.quant-penalty", "10", "--seed", "2"],
    }  # fmt: skip
    assert means == {"default (mean of 3 seeds)": ["default", "default-seed1", "default-seed2"],
                     "penalty (mean of 3 seeds)": ["penalty", "penalty-seed1", "penalty-seed2"]}  # fmt: skip
    assert qat_levers.seeded({"default": []}, None) == ({"default": []}, {})
    assert qat_levers.seeded({"default": []}, [3]) == ({"default-seed3": ["--seed", "3"]}, {})
    with pytest.raises(UsageError, match="a seed is given twice"):
        qat_levers.seeded({"default": []}, [1, 1])
    with pytest.raises(UsageError, match="lever x sets --seed itself"):
        qat_levers.seeded({"x": ["--seed", "4"]}, [0, 1])


def test_a_reported_run_of_another_seed_is_not_reused_as_this_seed(tmp_path, monkeypatch):
    run = tmp_path / "p-default-seed1"
    run.mkdir()
    (run / "report.json").write_text("{}")
    (run / "qat.yaml").write_text("train:\n  seed: 0\n")
    monkeypatch.setattr(subprocess, "run", lambda cmd: pytest.fail("a reported run must not be retrained"))
    args = argparse.Namespace(project=str(tmp_path), config="c.yaml", weights="w.pt", data="d.yaml", force=False)
    with pytest.raises(Exception, match=r"qat.yaml: trained with seed 0, but row p-default-seed1 is seed 1"):
        qat_levers.run_lever("p-default-seed1", ["--seed", "1"], args)
    (run / "qat.yaml").write_text("train:\n  seed: 1\n")
    assert qat_levers.run_lever("p-default-seed1", ["--seed", "1"], args) == run


def test_a_mean_over_seeds_is_scored_as_the_mean_of_its_seeds(tmp_path, monkeypatch):
    """Two seeds of one lever, reused and scored: the mean row's scores and differences are the seeds'
    means, its flags cell gives the seeds' spread, and its verdict follows the goal on the mean."""
    scored = {"fp32": _scored(0.02, 0), "ptq": _scored(0.03, 2), "default": _scored(0.12, 1),
              "default-seed1": _scored(0.025, 3)}  # fmt: skip
    for name in ("default", "default-seed1"):
        (tmp_path / f"t-{name}").mkdir()
        (tmp_path / f"t-{name}" / "report.json").write_text("{}")
        (tmp_path / f"t-{name}" / "qat.yaml").write_text(f"train:\n  seed: {1 if 'seed1' in name else 0}\n")

    def evaluate(paths, split):
        return {k: scored["fp32" if k == "FP32" else "ptq" if k == "PTQ INT8" else p.parent.name[2:]]
                for k, p in paths.items()}  # fmt: skip

    monkeypatch.setattr(qat_levers, "report_split", lambda data: SimpleNamespace(name="test"))
    monkeypatch.setattr(qat_levers, "evaluate_onnx", evaluate)
    out = tmp_path / "levers.md"
    assert qat_levers.main(["--data", "d.yaml", "--weights", "w.pt", "--project", str(tmp_path), "--prefix", "t",
                            "--only", "default", "--seeds", "0", "1", "--resamples", "100", "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["levers"]
    assert list(rows) == ["default", "default-seed1", "default (mean of 2 seeds)"]
    mean = rows["default (mean of 2 seeds)"]
    assert mean["members"] == ["default", "default-seed1"] and mean["flags"] is None
    for metric in ("map50_95", "ap_small"):
        assert mean["results"][metric] == pytest.approx(
            (rows["default"]["results"][metric] + rows["default-seed1"]["results"][metric]) / 2, abs=1e-12)
        for key in ("vs_fp32", "vs_ptq"):
            assert mean[key][metric]["delta"] == pytest.approx(
                (rows["default"][key][metric]["delta"] + rows["default-seed1"][key][metric]["delta"]) / 2, abs=1e-12)
    each = sorted(rows[r]["vs_fp32"]["map50_95"]["delta"] for r in mean["members"])
    assert mean["spread"] == pytest.approx(each)
    text = out.read_text()
    assert f"| default (mean of 2 seeds) | mean of default, default-seed1 (each vs FP32: {each[0]:+.4f} to " in text
    assert "A mean row's interval is the images' sampling" in text
