"""``toolchain split-data``: a test split carved out of val, seeded and by image, on a tiny made-up dataset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from base.dataset import list_images, load_data_yaml, load_split
from base.errors import ToolchainError
from toolchain.commands.data import SplitDataConfig
from toolchain.data.split import carve_test_split, split_images

VAL_IMAGES = 11


@pytest.fixture()
def dataset(tmp_path) -> Path:
    """2 train images, 11 val images (9 in a folder, 2 more in a list file), one box each; its data.yaml."""
    root = tmp_path / "ds"
    for split, n in (("train", 2), ("val", 9), ("extra", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / "images" / split / f"{split}{i}.png"), np.full((16, 16, 3), 10 * i, np.uint8))
            (root / "labels" / split / f"{split}{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.25 0.25\n")
    (root / "extra.txt").write_text("images/extra/extra0.png\nimages/extra/extra1.png\n")
    (root / "data.yaml").write_text("train: images/train\nval: [images/val, extra.txt]\nnames: [a, b]\n")
    return root / "data.yaml"


def _files(folder: Path) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_split_covers_val_disjointly_and_leaves_the_dataset_alone(dataset, tmp_path):
    before = _files(dataset.parent)
    carved = carve_test_split(dataset, tmp_path / "out" / "split.yaml", test_fraction=0.4, seed=3)
    assert _files(dataset.parent) == before  # nothing moved, changed or added in the user's dataset
    val = list_images(load_data_yaml(dataset).splits["val"])
    assert len(carved.test_images) == round(0.4 * VAL_IMAGES) and len(carved.val_images) == VAL_IMAGES - 4
    assert not set(carved.val_images) & set(carved.test_images)
    assert sorted(carved.val_images + carved.test_images) == sorted(val)
    spec = load_data_yaml(carved.data)
    assert spec.splits["train"] == load_data_yaml(dataset).splits["train"] and spec.names == ["a", "b"]
    assert (
        list_images(spec.splits["val"]) == carved.val_images and list_images(spec.splits["test"]) == carved.test_images
    )
    test = load_split(spec, "test", strict=True)  # the labels are found beside the original images
    assert len(test.images) == 4 and all(len(r.classes) == 1 for r in test.images)
    assert (tmp_path / "out" / "split.val.txt").is_file() and (tmp_path / "out" / "split.test.txt").is_file()


def test_the_same_seed_gives_the_same_split(dataset, tmp_path):
    a = carve_test_split(dataset, tmp_path / "a.yaml", 0.5, seed=0)
    b = carve_test_split(dataset, tmp_path / "b.yaml", 0.5, seed=0)
    c = carve_test_split(dataset, tmp_path / "c.yaml", 0.5, seed=1)
    assert a.test_images == b.test_images and a.test.read_text() == b.test.read_text()
    assert a.test_images != c.test_images
    assert sorted(a.test_images + a.val_images) == sorted(c.test_images + c.val_images)


def test_split_images_keeps_the_input_order():
    images = [Path(f"{i:02d}.jpg") for i in range(20)]
    val, test = split_images(images, 0.25, seed=5)
    assert len(test) == 5 and val == sorted(val) and test == sorted(test) and sorted(val + test) == images


def test_split_data_command_line(dataset, tmp_path, cli_tools):
    run_cli, _, config_classes = cli_tools
    out = tmp_path / "cli" / "data.yaml"
    run = run_cli(["split-data", "--data", dataset, "--out", out, "--test-fraction", 0.3, "--seed", 7], tmp_path)
    assert run.code == 0, run.err
    assert run.out.strip() == f"{out}: val 8 images (data.val.txt), test 3 images (data.test.txt)"
    assert yaml.safe_load(out.read_text())["test"] == str((tmp_path / "cli" / "data.test.txt").resolve())
    fields = {(c, f) for c in config_classes(SplitDataConfig) for f in SplitDataConfig.__dataclass_fields__}
    assert fields <= run.reads  # every setting is used


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["--test-fraction", 1.5], 2, "--test-fraction 1.5: expected a number in (0, 1), got 1.5"),
        (["--test-fraction", 0], 2, "--test-fraction 0: expected a number in (0, 1)"),
        (["--test-fraction", 0.01], 1, "--test-fraction 0.01 of 11 val images leaves test without an image"),
        (["--test-fraction", 0.99], 1, "--test-fraction 0.99 of 11 val images leaves val without an image"),
    ],
)
def test_a_fraction_out_of_range_is_one_line(dataset, tmp_path, cli_tools, argv, code, message):
    run_cli, _, _ = cli_tools
    run = run_cli(["split-data", "--data", dataset, "--out", tmp_path / "o.yaml", *argv], tmp_path)
    assert run.code == code and message in run.err and len(run.err.strip().splitlines()) == 1, run.err
    assert not (tmp_path / "o.yaml").exists()


def test_an_unwritable_output_is_one_line(dataset, tmp_path, cli_tools):
    run_cli, _, _ = cli_tools
    blocker = tmp_path / "file"
    blocker.write_text("a regular file, not a folder")  # root ignores chmod: a path under a file cannot be written
    run = run_cli(["split-data", "--data", dataset, "--out", blocker / "data.yaml"], tmp_path)
    assert run.code == 2 and f"--out {blocker / 'data.yaml'}: cannot write" in run.err, run.err
    assert len(run.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("train: images/train\nnames: [a, b]\n", "missing key 'val'"),
        ("train: images/train\nval: images/empty\nnames: [a, b]\n", "holds no image"),
        ("train: images/train\nval: images/val\ntest: images/val\nnames: [a, b]\n", "already has a test split"),
    ],
)
def test_a_dataset_without_a_val_split_to_carve_is_refused(dataset, tmp_path, yaml_text, message):
    (dataset.parent / "images" / "empty").mkdir()
    data = dataset.parent / "other.yaml"
    data.write_text(yaml_text)
    with pytest.raises(ToolchainError, match=message):
        carve_test_split(data, tmp_path / "o.yaml")
    assert not (tmp_path / "o.yaml").exists()


def test_the_output_may_not_overwrite_the_input(dataset):
    text = dataset.read_text()
    with pytest.raises(ToolchainError, match="the same file as the input --data"):
        carve_test_split(dataset, dataset)
    assert dataset.read_text() == text
