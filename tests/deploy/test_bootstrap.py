"""Paired bootstrap: the match-table arithmetic equals pycocotools on any resample, and the interval behaves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from base.dataset import ImageRecord, Split
from base.errors import ToolchainError
from deploy.bootstrap import Resamples, bootstrap_interval, paired_bootstrap
from deploy.evaluate import coco_map
from deploy.postprocess import Detections


def _split(images: int = 24, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(images):
        n = int(rng.integers(1, 5))
        xy = rng.uniform(0, 300, (n, 2))
        wh = rng.choice([12.0, 40.0, 120.0], (n, 1)) * rng.uniform(0.8, 1.2, (n, 2))  # small, medium, large
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        recs.append(ImageRecord(Path(f"{i}.jpg"), 480, 480, rng.integers(0, 3, n), boxes))
    return Split("val", ["a", "b", "c"], recs)


def _noisy(split: Split, noise: float, seed: int) -> list[Detections]:
    """Jittered boxes, some missed, some false positives, random scores: a model of middling quality."""
    rng = np.random.default_rng(seed)
    out = []
    for rec in split.images:
        keep = rng.random(len(rec.boxes)) > 0.15
        boxes = rec.boxes[keep] + rng.normal(0, noise, (int(keep.sum()), 4)).astype(np.float32)
        classes = rec.classes[keep]
        fp = int(rng.integers(0, 3))
        xy = rng.uniform(0, 400, (fp, 2))
        boxes = np.concatenate([boxes, np.concatenate([xy, xy + 30], 1).astype(np.float32)])
        classes = np.concatenate([classes, rng.integers(0, 3, fp)])
        out.append(Detections(boxes, rng.uniform(0.05, 1, len(boxes)).astype(np.float32), classes))
    return out


@pytest.mark.parametrize("metric, field", [("map50_95", "map50_95"), ("map50", "map50"), ("ap_small", "ap_small")])
def test_all_images_once_reproduce_pycocotools(metric, field):
    split = _split()
    result = coco_map(split, _noisy(split, 3.0, 1))
    assert result.matches.metric(metric) == pytest.approx(getattr(result, field), abs=1e-12)


def test_a_resample_with_repeats_equals_pycocotools_on_those_images():
    split = _split()
    dets = _noisy(split, 3.0, 1)
    table = coco_map(split, dets).matches
    sample = np.random.default_rng(5).integers(0, len(split.images), len(split.images))
    assert len(set(sample.tolist())) < len(sample)  # repeats present
    resampled = Split("val", split.names, [split.images[i] for i in sample])
    direct = coco_map(resampled, [dets[i] for i in sample])
    assert table.metric("map50_95", sample) == pytest.approx(direct.map50_95, abs=1e-12)
    assert table.metric("ap_small", sample) == pytest.approx(direct.ap_small, abs=1e-12)


def test_identical_pair_gives_a_degenerate_interval_at_zero():
    split = _split()
    table = coco_map(split, _noisy(split, 3.0, 1)).matches
    diff = paired_bootstrap(table, table, resamples=50)
    assert diff.delta == diff.low == diff.high == 0.0
    assert not diff.real and diff.describe().endswith("within noise")


def test_bootstrap_mean_matches_the_full_map_and_the_interval_covers_it():
    split = _split(images=40)
    table = coco_map(split, _noisy(split, 3.0, 1)).matches
    full = table.metric("map50_95")
    samples = np.random.default_rng(0).integers(0, 40, (300, 40))
    values = [table.metric("map50_95", s) for s in samples]
    # AP's precision envelope is convex, so resampled AP sits a little high: here 0.7 standard errors
    assert abs(np.mean(values) - full) < np.std(values)
    low, high = bootstrap_interval(table, resamples=300)
    assert low < full < high and high - low > 0.01


def test_a_much_better_model_is_real_and_a_slightly_different_one_is_noise():
    split = _split(images=40)
    good = coco_map(split, _noisy(split, 0.5, 1)).matches
    bad = coco_map(split, _noisy(split, 6.0, 1)).matches
    other_seed = coco_map(split, _noisy(split, 0.5, 2)).matches
    strong = paired_bootstrap(good, bad, resamples=200)
    assert strong.delta > 0 and strong.low > 0 and strong.real
    assert strong.low <= strong.delta <= strong.high
    weak = paired_bootstrap(good, other_seed, resamples=200)
    assert weak.low < 0 < weak.high and not weak.real
    assert weak.to_dict()["real"] is False and weak.to_dict()["resamples"] == 200


def test_a_mean_over_seeds_differs_by_the_mean_of_its_members_differences_on_every_resample():
    """Three seeds of one recipe and a reference: the mean's full-set difference is the mean of the three,
    its interval the percentiles of the per-resample means (narrower than the widest member's, as the
    members' image noise partly averages out), and a member or name that is missing is refused."""
    split = _split(images=40)
    seeds = {f"s{i}": coco_map(split, _noisy(split, 1.0 + i, 10 + i)).matches for i in range(3)}
    ref = coco_map(split, _noisy(split, 3.0, 1)).matches
    boot = Resamples(40, resamples=200)
    boot.add("ref", ref)
    for name, table in seeds.items():
        boot.add(name, table)
    boot.add_mean("mean", list(seeds))
    each = [boot.difference(name, "ref") for name in seeds]
    mean = boot.difference("mean", "ref")
    assert mean.delta == pytest.approx(np.mean([d.delta for d in each]), abs=1e-12)
    per_resample = np.mean([boot.values[n] - boot.values["ref"] for n in seeds], axis=0)
    assert (mean.low, mean.high) == pytest.approx(tuple(np.percentile(per_resample, [2.5, 97.5])), abs=1e-12)
    assert mean.high - mean.low <= max(d.high - d.low for d in each)
    assert boot.difference("ref", "mean").delta == pytest.approx(-mean.delta, abs=1e-12)
    with pytest.raises(ToolchainError, match=r"the mean 'm' needs added models.*s9 not added"):
        boot.add_mean("m", ["s0", "s9"])
    with pytest.raises(ToolchainError, match="the mean 'm' needs added models, got none"):
        boot.add_mean("m", [])


def test_mismatched_splits_and_bad_arguments_are_refused():
    split = _split()
    table = coco_map(split, _noisy(split, 3.0, 1)).matches
    smaller = _split(images=10)
    other = coco_map(smaller, _noisy(smaller, 3.0, 1)).matches
    with pytest.raises(ToolchainError, match="different splits"):
        paired_bootstrap(table, other)
    with pytest.raises(ToolchainError, match="metric must be one of"):
        paired_bootstrap(table, table, metric="map75")
    with pytest.raises(ToolchainError, match="resamples must be at least 10"):
        paired_bootstrap(table, table, resamples=3)
    with pytest.raises(ToolchainError, match="confidence must be in"):
        bootstrap_interval(table, confidence=95)
