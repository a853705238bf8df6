"""Subcommands for data: ``data`` (the synthetic set) and ``check-data``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from toolchain.config.fields import ExistingPath, Writable, check_fields
from toolchain.config.flags import Command
from toolchain.data.synthetic import SyntheticConfig


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
    from toolchain.data.synthetic import generate_dataset

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
    from deploy.dataset import load_data_yaml, load_split

    spec = load_data_yaml(cfg.data)
    for split in cfg.split or list(spec.splits):
        print(load_split(spec, split, strict=cfg.strict).summary())


SYNTHETIC_FLAGS = {
    f"--{flag}": f"synthetic.{key}"
    for flag, key in [("train", "n_train"), ("val", "n_val"), ("imgsz", "imgsz"), ("seed", "seed"),
                      ("min-size", "min_size"), ("max-size", "max_size"), ("workers", "workers")]
}  # fmt: skip

COMMANDS = [
    Command("data", DataConfig, _data, "generate the synthetic traffic-sign dataset", SYNTHETIC_FLAGS),
    Command("check-data", CheckDataConfig, _check, "check a data.yaml's images and labels and print a summary"),
]
