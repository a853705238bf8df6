"""``toolchain tile-data``: photos tiled k x k, labels mapped, no photo in both train and test canvases."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from base.dataset import load_data_yaml, load_split
from base.dataset.split import ImageRecord
from base.errors import ToolchainError
from toolchain.cli import main
from toolchain.data.tiles import TileConfig, difference_hash, draws, tile_canvas, tile_dataset


def _photo(path: Path, seed: int, shape=(60, 80)) -> None:
    """A photo no other looks like: smooth random field (distinct difference hashes)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    cv2.imwrite(str(path), cv2.resize(small, shape[::-1], interpolation=cv2.INTER_CUBIC))


@pytest.fixture()
def source(tmp_path) -> Path:
    """12 train and 6 val photos (80x60), one box each whose corner position encodes the photo."""
    root = tmp_path / "src"
    for split, n, base in (("train", 12, 0), ("val", 6, 100)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            _photo(root / "images" / split / f"p{base + i}.png", base + i)
            (root / "labels" / split / f"p{base + i}.txt").write_text(f"{i % 2} 0.25 0.5 0.2 0.4\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b]\n")
    return root / "data.yaml"


def _sources(out: Path) -> dict[str, set[str]]:
    with (out / "sources.csv").open() as f:
        rows = list(csv.DictReader(f))
    used: dict[str, set[str]] = {}
    for row in rows:
        used.setdefault(row["split"], set()).add(row["photo"])
    return used


def test_canvases_hold_k_by_k_photos_with_boxes_k_times_smaller(source, tmp_path):
    cfg = TileConfig(k=2, imgsz=64, train=5, val=2, test=4, val_fraction=0.34)
    data = tile_dataset(source, tmp_path / "k2", cfg)
    spec = load_data_yaml(data)
    assert set(spec.splits) == {"train", "val", "test"}
    test = load_split(spec, "test")
    assert len(test.images) == 4
    for record in test.images:
        assert (record.height, record.width) == (64, 64)
        assert len(record.classes) == 4  # one box per photo, four photos per canvas
        sides = record.boxes[:, 2:] - record.boxes[:, :2]
        # a photo's 80 px side fills the 32 px cell: its 16x24 px box becomes 6.4x9.6
        np.testing.assert_allclose(sides, [[6.4, 9.6]] * 4, atol=0.05)


def test_no_photo_in_both_train_and_test_canvases(source, tmp_path):
    out = tmp_path / "k2"
    tile_dataset(source, out, TileConfig(k=2, imgsz=64, train=9, val=3, test=6, val_fraction=0.34))
    used = _sources(out)
    assert not used["train"] & used["test"] and not used["val"] & used["test"] and not used["train"] & used["val"]
    assert {Path(p).parent.name for p in used["test"]} == {"val"}  # no test split: test canvases from val


def test_a_train_photo_that_is_a_test_photo_again_is_left_out(source, tmp_path):
    root = source.parent
    copy = root / "images" / "train" / "copy.png"
    copy.write_bytes((root / "images" / "val" / "p100.png").read_bytes())
    (root / "labels" / "train" / "copy.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    out = tmp_path / "k2"
    tile_dataset(source, out, TileConfig(k=2, imgsz=64, train=9, val=3, test=6, val_fraction=0.34))
    used = _sources(out)
    assert str(copy) not in used["train"] | used["val"]
    assert any(p.startswith(str(copy)) for p in used["left out"])


def test_a_recompressed_copy_is_the_same_photo_by_its_difference_hash(source):
    val = source.parent / "images" / "val" / "p101.png"
    img = cv2.imread(str(val))
    recompressed = source.parent / "recompressed.jpg"
    cv2.imwrite(str(recompressed), cv2.resize(img, (100, 75)), [cv2.IMWRITE_JPEG_QUALITY, 70])
    other = source.parent / "images" / "val" / "p102.png"
    assert (difference_hash(val) ^ difference_hash(recompressed)).bit_count() <= 6
    assert (difference_hash(val) ^ difference_hash(other)).bit_count() > 6


def test_draws_use_each_photo_equally_often_and_never_twice_in_a_canvas():
    canvases = draws(10, 25, 4, np.random.default_rng(0))
    assert all(len(set(c)) == 4 for c in canvases)
    counts = np.bincount(np.concatenate(canvases), minlength=10)
    assert counts.max() - counts.min() <= 1


def test_a_cell_keeps_the_photo_aspect_and_the_box_on_the_object(tmp_path):
    path = tmp_path / "wide.png"
    img = np.zeros((50, 100, 3), np.uint8)
    img[10:20, 60:80] = 255  # the object: 20x10 px at x 60..80, y 10..20
    cv2.imwrite(str(path), img)
    record = ImageRecord(path, 50, 100, np.array([0]), np.array([[60, 10, 80, 20]], np.float32))
    canvas, labels = tile_canvas([record] * 4, 2, 100)
    cx, cy, w, h = labels[3, 1:] * 100  # cell (1, 1): x 50..100, the photo 50x25 centred at y 62..87
    assert (w, h) == pytest.approx((10, 5))
    patch = canvas[int(cy - h / 2) + 1 : int(cy + h / 2) - 1, int(cx - w / 2) + 1 : int(cx + w / 2) - 1]
    assert patch.min() > 200


def test_the_same_config_reuses_the_folder_and_another_needs_force(source, tmp_path):
    out = tmp_path / "k2"
    cfg = TileConfig(k=2, imgsz=64, train=3, val=2, test=2, val_fraction=0.34)
    tile_dataset(source, out, cfg)
    stamp = (out / "generator.json").stat().st_mtime_ns
    tile_dataset(source, out, cfg)
    assert (out / "generator.json").stat().st_mtime_ns == stamp
    with pytest.raises(ToolchainError, match="--force"):
        tile_dataset(source, out, TileConfig(k=2, imgsz=64, train=4, val=2, test=2, val_fraction=0.34))


def test_a_pool_smaller_than_a_canvas_is_refused(source, tmp_path):
    with pytest.raises(ToolchainError, match=r"need 9 distinct photos, but their pool \(train split\) has 1"):
        tile_dataset(source, tmp_path / "k3", TileConfig(k=3, imgsz=96, train=2, val=2, test=2, val_fraction=0.1))


def test_the_command_line(source, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["tile-data", "--data", str(source), "--out", str(out), "--k", "2", "--imgsz", "64",
            "--train", "3", "--val", "2", "--test", "2", "--tiles.val-fraction", "0.34"]  # fmt: skip
    assert main(argv) in (0, None)
    printed = capsys.readouterr().out
    assert "test: 2 images, 8 boxes" in printed
    assert main(["tile-data", "--data", str(source), "--k", "9"]) == 2
