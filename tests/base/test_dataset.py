from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from base.dataset import label_path, load_data_yaml, load_split, parse_label_line, read_labels
from base.errors import ToolchainError


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
    assert split.summary().splitlines()[0] == "val: 2 images, 1 boxes, 2 skipped"


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


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("names: {0: a, '1': b}", r"'names' keys must be integer class ids, got '1' \(str\)"),
        ("names: {0: a, 2: b}", r"keys must be 0\.\.1 without gaps"),
        ("names: [a, [b]]", r"'names' holds \['b'\]"),
        ("names: [a, null]", "'names' holds None"),
        ("names: []", "'names' must be a non-empty list"),
        ("path: 123\nnames: [a]", r"'path' must be a folder path \(a string\), got 123"),
        ("path: [x]\nnames: [a]", "'path' must be a folder path"),
    ],
)
def test_bad_names_and_path_keys_are_one_line(tmp_path, yaml_text, message):
    (tmp_path / "images" / "val").mkdir(parents=True)
    (tmp_path / "data.yaml").write_text(f"train: images/val\nval: images/val\n{yaml_text}\n")
    with pytest.raises(ToolchainError, match=message):
        load_data_yaml(tmp_path / "data.yaml")


@pytest.mark.parametrize(
    ("split_value", "message"),
    [
        ("images/val/a.jpg", r"'val' points to the file .*a\.jpg; expected a folder of images or a \.txt"),
        ("{x: 1}", r"'val' must be a folder or a \.txt list"),
        ("[images/val, 7]", r"'val' must be a folder .* got 7"),
        ('"x\\0y"', r"'val' is not a usable path"),
        ("a" * 300, r"'val' is not a usable path .*File name too long"),
    ],
)
def test_split_must_be_a_folder_or_a_list_file(tmp_path, split_value, message):
    _write_dataset(tmp_path, {"a": ""})
    (tmp_path / "data.yaml").write_text(f"train: images/val\nval: {split_value}\nnames: [a]\n")
    with pytest.raises(ToolchainError, match=message):
        load_data_yaml(tmp_path / "data.yaml")


def test_non_utf8_files_are_named(tmp_path):
    yaml_path = _write_dataset(tmp_path, {"a": "0 0.5 0.5 0.1 0.1\n", "b": ""})
    yaml_path.write_bytes("train: images/val\nval: images/val\nnames: [stra\xdfe]\n".encode("latin-1"))
    with pytest.raises(ToolchainError, match=r"data\.yaml: data\.yaml is not UTF-8 text"):
        load_data_yaml(yaml_path)
    yaml_path.write_text("train: images/val\nval: images/val\nnames: [a]\n")
    (tmp_path / "labels" / "val" / "a.txt").write_bytes(b"0 0.5 0.5 0.1 0.1 \xff\xfe\n")
    split = load_split(load_data_yaml(yaml_path), "val")
    assert split.skipped == ["a.jpg"] and len(split.images) == 1
    listing = tmp_path / "val.txt"
    listing.write_bytes(b"images/val/a.jpg\n\xff\n")
    yaml_path.write_text("train: images/val\nval: val.txt\nnames: [a]\n")
    with pytest.raises(ToolchainError, match=r"val\.txt: image list is not UTF-8"):
        load_split(load_data_yaml(yaml_path), "val")


@pytest.mark.parametrize("cls", ["nan", "inf", "-inf", "NaN", "1e400"])
def test_non_finite_class_id_is_a_reason_not_a_crash(cls):
    values, reason = parse_label_line(f"{cls} 0.5 0.5 0.1 0.1", nc=2)
    assert values is None and "non-finite" in reason


def test_non_finite_coordinate_is_a_reason(tmp_path):
    values, reason = parse_label_line("0 nan 0.5 0.1 0.1", nc=2)
    assert values is None and "non-finite" in reason


def test_split_with_no_usable_image_is_an_error_naming_split_and_reason(tmp_path):
    """Every label uses class 1 while data.yaml names one class: before, this scored mAP 0 over 0 images."""
    yaml_path = _write_dataset(tmp_path, {"a": "1 0.5 0.5 0.1 0.1\n", "b": "1 0.5 0.5 0.2 0.2\n"})
    yaml_path.write_text("train: images/val\nval: images/val\nnames: [only]\n")
    with pytest.raises(ToolchainError) as info:
        load_split(load_data_yaml(yaml_path), "val")
    message = str(info.value)
    assert "'val' has no usable image: all 2 were skipped" in message
    assert "class id 1 out of range" in message and "lists 1 classes" in message


def test_truncated_jpeg_in_a_split_is_skipped_with_its_name(tmp_path):
    import cv2

    yaml_path = _write_dataset(tmp_path, {"a": "", "b": ""})
    whole = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8))[1].tobytes()
    (tmp_path / "images" / "val" / "b.jpg").write_bytes(whole[: len(whole) // 2])
    split = load_split(load_data_yaml(yaml_path), "val")
    assert split.skipped == ["b.jpg"]
    with pytest.raises(ToolchainError, match=r"b\.jpg: truncated JPEG"):
        load_split(load_data_yaml(yaml_path), "val", strict=True)


def test_jpeg_with_bytes_after_its_end_marker_is_whole(tmp_path):
    import cv2

    from base.dataset import read_image

    whole = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    (tmp_path / "trailer.jpg").write_bytes(whole + b"camera trailer")
    image, problem = read_image(tmp_path / "trailer.jpg")
    assert problem is None and image.shape == (8, 8, 3)
