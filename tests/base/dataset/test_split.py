"""A split loaded: bad images and labels skipped with their reasons, or refused with strict."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from base.dataset.data_yaml import load_data_yaml
from base.dataset.split import load_split
from base.errors import ToolchainError


def test_split_skips_and_counts_bad_images(tmp_path, write_dataset):
    yaml_path = write_dataset(
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


def test_split_strict_fails_on_undecodable_image(tmp_path, write_dataset):
    yaml_path = write_dataset(tmp_path, {"good": "0 0.5 0.5 0.5 0.5\n"}, broken_image="broken")
    with pytest.raises(ToolchainError, match=r"broken\.jpg: image does not decode"):
        load_split(load_data_yaml(yaml_path), "val", strict=True)


def test_real_dataset_loads(road_signs):
    split = load_split(load_data_yaml(road_signs), "val")
    assert len(split.images) == 140 and not split.skipped
    assert sum(len(r.classes) for r in split.images) == 199


def test_non_utf8_files_are_named(tmp_path, write_dataset):
    yaml_path = write_dataset(tmp_path, {"a": "0 0.5 0.5 0.1 0.1\n", "b": ""})
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


def test_split_with_no_usable_image_is_an_error_naming_split_and_reason(tmp_path, write_dataset):
    """Every label uses class 1 while data.yaml names one class: before, this scored mAP 0 over 0 images."""
    yaml_path = write_dataset(tmp_path, {"a": "1 0.5 0.5 0.1 0.1\n", "b": "1 0.5 0.5 0.2 0.2\n"})
    yaml_path.write_text("train: images/val\nval: images/val\nnames: [only]\n")
    with pytest.raises(ToolchainError) as info:
        load_split(load_data_yaml(yaml_path), "val")
    message = str(info.value)
    assert "'val' has no usable image: all 2 were skipped" in message
    assert "class id 1 out of range" in message and "lists 1 classes" in message


def test_truncated_jpeg_in_a_split_is_skipped_with_its_name(tmp_path, write_dataset):
    yaml_path = write_dataset(tmp_path, {"a": "", "b": ""})
    whole = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8))[1].tobytes()
    (tmp_path / "images" / "val" / "b.jpg").write_bytes(whole[: len(whole) // 2])
    split = load_split(load_data_yaml(yaml_path), "val")
    assert split.skipped == ["b.jpg"]
    with pytest.raises(ToolchainError, match=r"b\.jpg: truncated JPEG"):
        load_split(load_data_yaml(yaml_path), "val", strict=True)
