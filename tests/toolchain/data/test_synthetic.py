from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from base.dataset import load_data_yaml, load_split
from base.errors import ToolchainError
from toolchain.data.scene import SceneConfig, render_scene
from toolchain.data.signs import (
    FINE_CLASSES,
    SIGN_CLASSES,
    SPEED_LIMITS,
    class_templates,
    distractor_templates,
    sign_templates,
)
from toolchain.data.synthetic import SyntheticConfig, generate_dataset


def test_scene_is_a_pure_function_of_its_seed():
    cfg = SceneConfig(imgsz=128, min_size=10, max_size=40)
    a_img, a_lab = render_scene(np.random.default_rng(7), cfg)
    b_img, b_lab = render_scene(np.random.default_rng(7), cfg)
    c_img, _ = render_scene(np.random.default_rng(8), cfg)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img, c_img)


def test_scene_labels_are_valid_and_sized():
    cfg = SceneConfig(imgsz=256, min_size=12, max_size=60)
    for seed in range(20):
        img, labels = render_scene(np.random.default_rng(seed), cfg)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        assert labels.shape[1] == 5 and len(labels) >= 1
        assert set(labels[:, 0].astype(int)) <= set(range(len(SIGN_CLASSES)))
        assert (labels[:, 1:] >= 0).all() and (labels[:, 1:] <= 1).all()
        side = np.maximum(labels[:, 3], labels[:, 4]) * 256
        assert (side >= 5).all() and (side <= 0.4 * 256 * 1.6).all()


def test_every_class_has_a_distinct_template():
    firsts = [sign_templates(c)[0][0] for c in range(len(SIGN_CLASSES))]
    for i in range(len(firsts)):
        for j in range(i + 1, len(firsts)):
            assert np.abs(firsts[i].astype(int) - firsts[j].astype(int)).mean() > 5, (SIGN_CLASSES[i], SIGN_CLASSES[j])
    assert len(sign_templates(SIGN_CLASSES.index("speed_limit"))) > 1
    assert len(distractor_templates()) >= 3


def test_dataset_is_deterministic_valid_and_reused(tmp_path, tiny_dataset):
    cfg = json.loads((tiny_dataset.parent / "generator.json").read_text())
    again = generate_dataset(tmp_path / "again", SyntheticConfig(**cfg))
    for name in ("images/train/train_000003.jpg", "labels/val/val_000002.txt"):
        assert (again.parent / name).read_bytes() == (tiny_dataset.parent / name).read_bytes()
    spec = load_data_yaml(tiny_dataset)
    assert spec.names == list(SIGN_CLASSES)
    for split, n in (("train", 24), ("val", 8)):
        checked = load_split(spec, split, strict=True)
        assert len(checked.images) == n and not checked.skipped
    mtime = again.stat().st_mtime_ns
    assert generate_dataset(tmp_path / "again", SyntheticConfig(**cfg)) == again
    assert again.stat().st_mtime_ns == mtime  # reused, not rewritten


def test_existing_folder_with_other_config_needs_force(tmp_path):
    cfg = SyntheticConfig(n_train=2, n_val=1, imgsz=64, min_size=8, max_size=20, workers=1)
    generate_dataset(tmp_path / "d", cfg)
    other = SyntheticConfig(n_train=3, n_val=1, imgsz=64, min_size=8, max_size=20, workers=1)
    with pytest.raises(ToolchainError, match="--force"):
        generate_dataset(tmp_path / "d", other)
    generate_dataset(tmp_path / "d", other, force=True)
    assert len(list((tmp_path / "d" / "images" / "train").iterdir())) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("kwargs", [{"n_train": 0}, {"imgsz": 16}, {"min_size": 50, "max_size": 20}])
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ToolchainError, match="synthetic data"):
        SyntheticConfig(**kwargs)


def test_hard_mode_has_a_class_per_speed_limit_and_a_test_split(tmp_path):
    cfg = SyntheticConfig(n_train=4, n_val=2, n_test=3, imgsz=96, min_size=6, max_size=20, max_signs=8,
                          fine_classes=True, workers=1)  # fmt: skip
    spec = load_data_yaml(generate_dataset(tmp_path / "hard", cfg))
    assert spec.names == list(FINE_CLASSES) and len(spec.names) == 15
    assert [n for n in spec.names if n.startswith("speed_limit_")] == [f"speed_limit_{v}" for v in SPEED_LIMITS]
    test = load_split(spec, "test", strict=True)
    assert len(test.images) == 3
    sides = np.concatenate([r.boxes[:, 2:] - r.boxes[:, :2] for r in test.images])
    assert sides.max() < 32  # small signs only (COCO small: under 32 px)
    templates = class_templates(fine=True)
    assert len(templates) == 15 and all(len(v) == 1 for v in templates[5:11])  # one limit per class


def test_the_default_mode_draws_what_it_drew_before_the_hard_mode(tmp_path):
    """The class list of the default mode is the one it always had: the same seed gives the same scene."""
    assert class_templates(fine=False) == tuple(sign_templates(c) for c in range(len(SIGN_CLASSES)))
    cfg = SyntheticConfig(n_train=2, n_val=1, imgsz=64, workers=1)
    assert cfg.stamp() == {k: v for k, v in asdict(cfg).items() if k not in ("n_test", "max_signs", "fine_classes")}


def test_a_folder_stamped_before_the_hard_mode_is_still_current(tmp_path):
    cfg = SyntheticConfig(n_train=2, n_val=1, imgsz=64, workers=1)
    data = generate_dataset(tmp_path / "old", cfg)
    stamp = json.loads((data.parent / "generator.json").read_text())
    assert "fine_classes" not in stamp and "n_test" not in stamp
    assert generate_dataset(tmp_path / "old", cfg) == data  # reused: no --force needed
