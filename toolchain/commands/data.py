"""Subcommands for data: ``data`` (the synthetic set), ``check-data`` and ``split-data`` (a test split out of val)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from base.dataset import load_data_yaml, load_split
from toolchain.config.fields import ExistingPath, Range, Writable, check_fields
from toolchain.config.flags import Command
from toolchain.data.split import carve_test_split
from toolchain.data.synthetic import SyntheticConfig, generate_dataset
from toolchain.data.tiles import TileConfig, tile_dataset


@dataclass(frozen=True)
class DataConfig:
    """``toolchain data``: generate the synthetic traffic-sign dataset.

    Attributes:
        out: Destination folder (its data.yaml is what the other commands take).
        force: Replace an existing folder made with another config.
        synthetic: What is generated: counts, image size, sign sizes, seed.
    """

    out: Annotated[str, Writable()] = "data/synthetic"
    force: bool = False
    synthetic: SyntheticConfig = SyntheticConfig()

    def __post_init__(self) -> None:
        check_fields(self)


def _data(cfg: DataConfig) -> None:
    print(generate_dataset(cfg.out, cfg.synthetic, force=cfg.force))


@dataclass(frozen=True)
class CheckDataConfig:
    """``toolchain check-data``: check a data.yaml's images and labels and print a summary.

    Attributes:
        data: The data.yaml.
        split: Splits to check (empty: all).
        strict: Fail on the first bad image or label line.
    """

    data: ExistingPath
    split: tuple[str, ...] = ()
    strict: bool = False

    def __post_init__(self) -> None:
        check_fields(self)


def _check(cfg: CheckDataConfig) -> None:
    spec = load_data_yaml(cfg.data)
    for split in cfg.split or list(spec.splits):
        print(load_split(spec, split, strict=cfg.strict).summary())


@dataclass(frozen=True)
class SplitDataConfig:
    """``toolchain split-data``: carve a test split out of a data.yaml's val split, seeded and by image,
    into a new data.yaml whose val and test are lists of the original images (nothing is moved).

    Attributes:
        data: The data.yaml (with a val split and no test split).
        out: The new data.yaml; its val and test image lists are written beside it (<stem>.val.txt, <stem>.test.txt).
        test_fraction: Share of the val images that go to test.
        seed: Seed of the draw: the same data, fraction and seed give the same split.
    """

    data: ExistingPath
    out: Annotated[str, Writable((".yaml", ".yml"))] = "data/split/data.yaml"
    test_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self)


def _split(cfg: SplitDataConfig) -> None:
    print(carve_test_split(cfg.data, cfg.out, cfg.test_fraction, cfg.seed).summary())


@dataclass(frozen=True)
class TileDataConfig:
    """``toolchain tile-data``: the far-away variant of a YOLO data set, its photos tiled k x k onto
    each canvas so every object is k times smaller; test canvases from photos no train canvas holds.

    Attributes:
        data: The source data.yaml (train, and test or val: the test canvases' photos).
        out: Destination folder (its data.yaml has train, val and test splits).
        force: Replace an existing folder made from another source or config.
        tiles: Tiles per side, canvas size and counts, seed.
    """

    data: ExistingPath
    out: Annotated[str, Writable()] = "data/hard/tiles"
    force: bool = False
    tiles: TileConfig = TileConfig()

    def __post_init__(self) -> None:
        check_fields(self)


def _tile(cfg: TileDataConfig) -> None:
    data = tile_dataset(cfg.data, cfg.out, cfg.tiles, force=cfg.force)
    spec = load_data_yaml(data)
    for split in spec.splits:
        print(load_split(spec, split).summary())


SYNTHETIC_FLAGS = {
    f"--{flag}": f"synthetic.{key}"
    for flag, key in [("train", "n_train"), ("val", "n_val"), ("test", "n_test"), ("imgsz", "imgsz"), ("seed", "seed"),
                      ("min-size", "min_size"), ("max-size", "max_size"), ("workers", "workers")]
}  # fmt: skip

COMMANDS = [
    Command("data", DataConfig, _data, "generate the synthetic traffic-sign dataset", SYNTHETIC_FLAGS),
    Command("check-data", CheckDataConfig, _check, "check a data.yaml's images and labels and print a summary"),
    Command("tile-data", TileDataConfig, _tile, "tile photos k x k per canvas: every object k times smaller",
            {f"--{key}": f"tiles.{key}" for key in ("k", "imgsz", "train", "val", "test", "seed")}),
    Command("split-data", SplitDataConfig, _split, "carve a test split out of val (seeded, by image): a new data.yaml"),
]
