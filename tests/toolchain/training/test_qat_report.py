"""The QAT report's accuracy part: every model scored on the test split when data.yaml has one (best.pt
was selected on val), an 'optimistic' flag when it has none, the PTQ-within-0.3-points verdict, small /
medium / large AP, and a paired bootstrap interval for every difference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from base.dataset import ImageRecord, Split
from deploy.bootstrap import Difference
from deploy.evaluate import EvalResult, coco_map
from deploy.postprocess import Detections
from toolchain.data.split import carve_test_split
from toolchain.training.qat_report import PAIRS, AccuracyReport, accuracy_report, differences, table

MODELS = ("FP32", "PTQ INT8", "QAT INT8")


def test_a_run_without_a_test_split_says_its_val_figures_are_optimistic(qat_run):
    run = qat_run.folder / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["evaluation"] == {"split": "val", "images": 8, "selected_on": "val", "optimistic": True}
    markdown = (run / "report.md").read_text()
    assert "the split best.pt was selected on: these figures are optimistic for the selected checkpoint" in markdown
    assert "| model | mAP50-95 | mAP50 | AP small | AP medium | AP large |" in markdown
    gap = report["ptq_within_fp32"]["difference"]
    assert gap["delta"] == pytest.approx(
        report["results"]["PTQ INT8"]["map50_95"] - report["results"]["FP32"]["map50_95"]
    )
    assert report["ptq_within_fp32"]["within"] == (gap["delta"] >= -0.003)
    assert set(report["differences"]["map50_95"]) == {f"{a} - {b}" for a, b in PAIRS}


@pytest.fixture(scope="module")
def on_test(qat_run, tiny_dataset, tmp_path_factory) -> AccuracyReport:
    """The tiny QAT run's three ONNX files scored with its data split 4 val / 4 test."""
    data = carve_test_split(tiny_dataset, tmp_path_factory.mktemp("split") / "data.yaml", 0.5, seed=0).data
    run = qat_run.folder / "run"
    paths = {"FP32": run / "fp32.onnx", "PTQ INT8": run / "ptq.int8.onnx", "QAT INT8": run / "qat.int8.onnx"}
    return accuracy_report(paths, data, resamples=200)


def test_with_a_test_split_every_model_is_scored_on_test(on_test):
    assert on_test.split == "test" and not on_test.optimistic
    assert [r.images for r in on_test.results.values()] == [4, 4, 4]  # the 4 test images, not the 8 of val
    saved = on_test.to_dict()
    assert saved["evaluation"] == {"split": "test", "images": 4, "selected_on": "val", "optimistic": False}
    assert on_test.markdown().startswith("Scored on the test split (4 images); best.pt was selected on val")


def _scored(jitter: float, seed: int) -> EvalResult:
    """COCO metrics of made-up detections on 40 made-up images (a 16 px and a 48 px box each): every
    box found, its corners moved by up to ``jitter`` of its side, plus one false positive per image."""
    rng = np.random.default_rng(seed)
    gt = np.array([[20, 20, 36, 36], [100, 100, 148, 148]], np.float32)
    split = Split(
        "test", ["a", "b"], [ImageRecord(Path(f"{i}.jpg"), 200, 200, np.array([0, 1]), gt) for i in range(40)]
    )
    detections = []
    for _ in split.images:
        side = (gt[:, 2:] - gt[:, :2]).repeat(2, 1)
        boxes = gt + rng.uniform(-jitter, jitter, gt.shape) * side
        boxes = np.concatenate([boxes, [[150, 10, 190, 50]]]).astype(np.float32)
        detections.append(Detections(boxes, rng.uniform(0.3, 1.0, 3).astype(np.float32), np.array([0, 1, 0])))
    return coco_map(split, detections)


def test_every_difference_is_the_difference_of_the_table_with_an_interval():
    results = {"FP32": _scored(0.02, 0), "PTQ INT8": _scored(0.12, 1), "QAT INT8": _scored(0.05, 2)}
    diffs = differences(results, resamples=200)
    assert set(diffs) == {"map50_95", "ap_small"}
    for metric, pairs in diffs.items():
        for a, b in PAIRS:
            d = pairs[f"{a} - {b}"]
            values = [getattr(results[m], metric) for m in (a, b)]
            assert d.delta == pytest.approx(values[0] - values[1], abs=1e-9), (metric, a, b)
            assert d.low < d.delta < d.high and d.images == 40 and d.resamples == 200, (metric, a, b)
    assert diffs["map50_95"]["PTQ INT8 - FP32"].delta < -0.05 and diffs["map50_95"]["PTQ INT8 - FP32"].real
    report = AccuracyReport("test", results, diffs)
    assert not report.ptq_within and "QAT INT8 beat PTQ INT8 on test" in report.markdown()
    assert "| PTQ INT8 - FP32 | " + diffs["map50_95"]["PTQ INT8 - FP32"].describe() in report.markdown()


def test_ap_small_has_no_interval_when_no_model_has_a_small_box():
    results = {m: _result(0.5, small=None) for m in MODELS}
    for r in results.values():
        r.images, r.matches = 40, _scored(0.02, 0).matches
    assert set(differences(results, resamples=20)) == {"map50_95"}


def _result(map50_95: float, small: float | None = 0.3) -> EvalResult:
    return EvalResult(map50_95, map50_95 + 0.2, {"a": map50_95}, small, 0.5, None, 100)


def _report(ptq_gap: float, qat_vs_ptq: tuple[float, float, float]) -> AccuracyReport:
    results = {"FP32": _result(0.60), "PTQ INT8": _result(0.60 + ptq_gap), "QAT INT8": _result(0.60)}
    diffs = {"PTQ INT8 - FP32": Difference("map50_95", ptq_gap, ptq_gap - 0.004, ptq_gap + 0.004, 0.95, 1000, 100),
             "QAT INT8 - FP32": Difference("map50_95", 0.0, -0.004, 0.004, 0.95, 1000, 100),
             "QAT INT8 - PTQ INT8": Difference("map50_95", *qat_vs_ptq, 0.95, 1000, 100)}  # fmt: skip
    return AccuracyReport("test", results, {"map50_95": diffs})


@pytest.mark.parametrize(
    ("gap", "within", "sentence"),
    [
        (-0.0029, True, "PTQ INT8 was already within 0.3 points of FP32 (mAP50-95 -0.0029 [-0.0069, +0.0011]"),
        (0.0040, True, "PTQ INT8 was already within 0.3 points of FP32"),
        (-0.0031, False, "PTQ INT8 was 0.31 points below FP32 (mAP50-95 -0.0031 [-0.0071, +0.0009] within noise)"),
        (-0.0120, False, "QAT had accuracy to recover"),
    ],
)
def test_the_report_says_whether_ptq_was_within_0_3_points(gap, within, sentence):
    report = _report(gap, (0.0, -0.001, 0.001))
    assert report.ptq_within is within and report.to_dict()["ptq_within_fp32"]["within"] is within
    assert sentence in report.markdown()


@pytest.mark.parametrize(
    ("qat_vs_ptq", "verdict"),
    [
        ((0.004, -0.001, 0.009), "QAT INT8 did not beat PTQ INT8 on test (mAP50-95 +0.0040 [-0.0010, +0.0090] within"),
        ((0.004, 0.001, 0.009), "QAT INT8 beat PTQ INT8 on test (mAP50-95 +0.0040 [+0.0010, +0.0090] real)"),
        ((-0.004, -0.009, -0.001), "QAT INT8 fell short of PTQ INT8 on test"),
    ],
)
def test_qat_beats_ptq_only_when_the_interval_excludes_0(qat_vs_ptq, verdict):
    assert verdict in _report(-0.01, qat_vs_ptq).markdown()


def test_the_table_has_small_medium_and_large_ap_of_every_model():
    lines = table({"FP32": _result(0.6, 0.25), "QAT INT8": _result(0.5, None)}).splitlines()
    assert lines[0] == "| model | mAP50-95 | mAP50 | AP small | AP medium | AP large | a |"
    assert lines[1].count("---") == 7  # one separator cell per column
    assert lines[2] == "| FP32 | 0.6000 | 0.8000 | 0.2500 | 0.5000 | n/a | 0.6000 |"
    assert lines[3] == "| QAT INT8 | 0.5000 | 0.7000 | n/a | 0.5000 | n/a | 0.5000 |"
