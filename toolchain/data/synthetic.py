"""Synthetic traffic-sign dataset in ultralytics' YOLO layout, deterministic by seed.

Example:
    >>> from toolchain.data.synthetic import SyntheticConfig, generate_dataset
    >>> generate_dataset("data/synthetic", SyntheticConfig(n_train=800, n_val=200, imgsz=320))
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from base.errors import ToolchainError
from toolchain.data.folder import write_folder
from toolchain.data.scene import SceneConfig, render_scene
from toolchain.data.signs import FINE_CLASSES, SIGN_CLASSES

logger = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SyntheticConfig:
    """What ``make data`` generates.

    Attributes:
        n_train: Images in the train split.
        n_val: Images in the val split.
        n_test: Images in a test split (0: none), the split a QAT report scores on when there is one.
        imgsz: Side of the square images in pixels.
        seed: Seed of the whole dataset; image ``i`` of a split depends only on (seed, split, i).
        min_size: Smallest sign side in pixels.
        max_size: Largest sign side in pixels.
        workers: Processes drawing images (0: one per CPU core).
        jpeg_quality: JPEG quality of the written images.
        max_signs: Most labelled signs in one image.
        fine_classes: Each speed limit a class of its own (15 classes instead of 10): the hard mode,
            with small signs (configs/data-hard.yaml).
    """

    n_train: int = 2000
    n_val: int = 400
    n_test: int = 0
    imgsz: int = 640
    seed: int = 0
    min_size: float = 10.0
    max_size: float = 150.0
    workers: int = 0
    jpeg_quality: int = 92
    max_signs: int = 6
    fine_classes: bool = False

    def __post_init__(self) -> None:
        if self.n_test < 0:
            raise ToolchainError(f"synthetic data: n_test must be 0 (no test split) or more, got {self.n_test}")
        for key in ("n_train", "n_val", "imgsz", "max_signs"):
            if getattr(self, key) < 1:
                raise ToolchainError(f"synthetic data: {key} must be at least 1, got {getattr(self, key)}")
        if self.imgsz < 32:
            raise ToolchainError(f"synthetic data: imgsz must be at least 32 px, got {self.imgsz}")
        if not 2 <= self.min_size <= self.max_size:
            raise ToolchainError(
                f"synthetic data: expected 2 <= min_size <= max_size, got {self.min_size} and {self.max_size}"
            )

    def scene(self) -> SceneConfig:
        """The per-image drawing settings."""
        return SceneConfig(imgsz=self.imgsz, min_size=self.min_size, max_size=self.max_size,
                           max_signs=self.max_signs, fine_classes=self.fine_classes)  # fmt: skip

    def stamp(self) -> dict:
        """What ``generator.json`` records: every setting, less those added since at their default (a
        folder generated before they existed is still current)."""
        added = {"n_test": 0, "max_signs": 6, "fine_classes": False}
        return {k: v for k, v in asdict(self).items() if k not in added or v != added[k]}


def _render_one(job: tuple[SyntheticConfig, str, int, str]) -> int:
    cfg, split, index, root = job
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    img, labels = render_scene(rng, cfg.scene())
    stem = f"{split}_{index:06d}"
    cv2.imwrite(f"{root}/images/{split}/{stem}.jpg", img, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    lines = [f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
    Path(f"{root}/labels/{split}/{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def generate_dataset(out_dir: str | Path, cfg: SyntheticConfig, force: bool = False) -> Path:
    """Write the dataset to ``out_dir`` (atomically) and return its ``data.yaml``.

    A folder already generated with the same config is reused; another one is replaced only
    with ``force``.

    Args:
        out_dir: Destination folder.
        cfg: Counts, size and seed.
        force: Replace an existing folder made with another config.

    Returns:
        Path of the written ``data.yaml``.

    Raises:
        ToolchainError: ``out_dir`` exists with other content and ``force`` is not set.
    """
    return write_folder(out_dir, cfg.stamp(), lambda root: _write_all(root, cfg), force, what="synthetic data")


def _write_all(root: Path, cfg: SyntheticConfig) -> None:
    counts = dict(zip(SPLITS, (cfg.n_train, cfg.n_val, cfg.n_test)))
    splits = [s for s in SPLITS if counts[s]]
    for split in splits:
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    jobs = [(cfg, s, i, str(root)) for s in splits for i in range(counts[s])]
    workers = cfg.workers or os.cpu_count() or 1
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        chunks = max(1, len(jobs) // (workers * 16))
        boxes = sum(tqdm(pool.imap(_render_one, jobs, chunksize=chunks), total=len(jobs), desc="synthetic", unit="img"))
    elapsed = time.perf_counter() - start
    logger.info(
        "Generated %d images (%d boxes) at %dx%d in %.1f s: %.0f images/s with %d workers",
        len(jobs), boxes, cfg.imgsz, cfg.imgsz, elapsed, len(jobs) / elapsed, workers,
    )
    names = dict(enumerate(FINE_CLASSES if cfg.fine_classes else SIGN_CLASSES))
    data = {**{s: f"images/{s}" for s in splits}, "names": names}
    header = "# Synthetic Vietnamese-style road signs (toolchain.data.synthetic). Paths relative to this file.\n"
    (root / "data.yaml").write_text(header + yaml.safe_dump(data, sort_keys=False))
