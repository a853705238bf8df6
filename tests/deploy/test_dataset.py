from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deploy.dataset import label_path, load_data_yaml, load_split, parse_label_line, read_labels
from deploy.errors import ToolchainError


def _write_dataset(root: Path, labels: dict[str, str], broken_image: str | None = None) -> Path:
    import cv2

    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for stem, text in labels.items():
        cv2.imwrite(str(root / "images" / "val" / f"{stem}.jpg"), np.full((40, 60, 3), 128, np.uint8))
        (root / "labels" / "val" / f"{stem}.txt").write_text(text)
    if broken_image:
        (root / "images" / "val" / f"{broken_image}.jpg").write_bytes(b"not a jpeg")
    yaml_path = root / "data.yaml"
    yaml_path.write_text("train: images/val\nval: images/val\nnames: [a, b]\n")
    return yaml_path


def test_missing_data_yaml_names_file_and_fix(tmp_path):
    with pytest.raises(ToolchainError, match=r"data\.yaml not found.*make data"):
        load_data_yaml(tmp_path / "data.yaml")


def test_wrong_image_folder_names_key_and_path(tmp_path):
    (tmp_path / "data.yaml").write_text("train: images/train\nval: nowhere\nnames: [a]\n")
    (tmp_path / "images" / "train").mkdir(parents=True)
    with pytest.raises(ToolchainError, match=r"'val' points to .*nowhere"):
        load_data_yaml(tmp_path / "data.yaml")


def test_missing_key_is_named(tmp_path):
    (tmp_path / "data.yaml").write_text("train: a\nval: a\n")
    with pytest.raises(ToolchainError, match="missing key 'names'"):
        load_data_yaml(tmp_path / "data.yaml")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0 0.5 0.5 0.1", "expected 5 fields"),
        ("2 0.5 0.5 0.1 0.1", "class id 2 out of range"),
        ("0.5 0.5 0.5 0.1 0.1", "out of range"),
        ("0 1.5 0.5 0.1 0.1", r"outside \[0, 1\]"),
        ("0 0.5 0.5 0 0.1", "must be positive"),
        ("a 0.5 0.5 0.1 0.1", "non-numeric"),
    ],
)
def test_bad_label_lines(line, problem):
    values, reason = parse_label_line(line, nc=2)
    assert values is None
    assert reason is not None and __import__("re").search(problem, reason)


def test_good_label_line():
    values, reason = parse_label_line("1 0.5 0.25 0.1 0.2", nc=2)
    assert reason is None and values == [1.0, 0.5, 0.25, 0.1, 0.2]


def test_bad_line_reported_as_file_line(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("0 0.5 0.5 0.1 0.1\n\n5 0.5 0.5 0.1 0.1\n")
    rows, problems = read_labels(path, nc=2)
    assert rows.shape == (1, 5)
    assert problems == [f"{path}:3: class id 5 out of range: expected an integer in [0, 1]"]


def test_split_skips_and_counts_bad_images(tmp_path):
    yaml_path = _write_dataset(
        tmp_path, {"good": "1 0.5 0.5 0.5 0.5\n", "empty": "", "bad": "0 0.5 0.5 0.1\n"}, broken_image="broken"
    )
    split = load_split(load_data_yaml(yaml_path), "val")
    assert sorted(r.path.stem for r in split.images) == ["empty", "good"]
    assert sorted(split.skipped) == ["bad.jpg", "broken.jpg"]
    good = next(r for r in split.images if r.path.stem == "good")
    np.testing.assert_allclose(good.boxes, [[15, 10, 45, 30]])  # 60x40 image, centre box of half size
    assert (good.height, good.width) == (40, 60)
    empty = next(r for r in split.images if r.path.stem == "empty")
    assert empty.boxes.shape == (0, 4)
    assert "4 images" not in split.summary() and "2 skipped" in split.summary()


def test_split_strict_fails_on_undecodable_image(tmp_path):
    yaml_path = _write_dataset(tmp_path, {"good": "0 0.5 0.5 0.5 0.5\n"}, broken_image="broken")
    with pytest.raises(ToolchainError, match=r"broken\.jpg: image does not decode"):
        load_split(load_data_yaml(yaml_path), "val", strict=True)


def test_label_path_replaces_last_images_folder():
    assert label_path(Path("/d/images/x/images/val/a.jpg")) == Path("/d/images/x/labels/val/a.txt")


def test_path_key_is_relative_to_working_directory(tmp_path, monkeypatch):
    yaml_path = _write_dataset(tmp_path / "ds", {"a": ""})
    yaml_path.write_text("path: ds\ntrain: images/val\nval: images/val\nnames: {0: a, 1: b}\n")
    monkeypatch.chdir(tmp_path)
    spec = load_data_yaml(yaml_path)
    assert spec.root == tmp_path / "ds" and spec.names == ["a", "b"]


def test_real_dataset_loads(road_signs):
    split = load_split(load_data_yaml(road_signs), "val")
    assert len(split.images) == 140 and not split.skipped
    assert sum(len(r.classes) for r in split.images) == 199
