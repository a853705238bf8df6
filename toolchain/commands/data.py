"""Subcommands for data: ``data`` (synthetic set) and ``check-data``."""

from __future__ import annotations

import argparse


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data/synthetic", help="destination folder")
    p.add_argument("--train", type=int, default=2000, help="train images")
    p.add_argument("--val", type=int, default=400, help="val images")
    p.add_argument("--imgsz", type=int, default=640, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-size", type=float, default=10.0, help="smallest sign side in pixels")
    p.add_argument("--max-size", type=float, default=150.0, help="largest sign side in pixels")
    p.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")
    p.add_argument("--force", action="store_true", help="replace an existing folder made with another config")


def _data(a: argparse.Namespace) -> None:
    from toolchain.data.synthetic import SyntheticConfig, generate_dataset

    cfg = SyntheticConfig(a.train, a.val, a.imgsz, a.seed, a.min_size, a.max_size, a.workers)
    print(generate_dataset(a.out, cfg, force=a.force))


def _check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="data.yaml")
    p.add_argument("--split", nargs="*", default=None, help="splits to check (default: all)")
    p.add_argument("--strict", action="store_true", help="fail on the first bad image or label line")


def _check(a: argparse.Namespace) -> None:
    from deploy.dataset import load_data_yaml, load_split

    spec = load_data_yaml(a.data)
    for split in a.split or list(spec.splits):
        print(load_split(spec, split, strict=a.strict).summary())


COMMANDS = {
    "data": (_data_args, _data, "generate the synthetic traffic-sign dataset"),
    "check-data": (_check_args, _check, "check a data.yaml's images and labels and print a summary"),
}
