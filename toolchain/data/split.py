"""A test split carved out of a dataset's val split: seeded, by image, and written as a new data.yaml
whose val and test are two lists of the original image paths. The dataset's own files are never
moved or changed.

A test split is what makes a QAT report honest: ``make qat`` selects ``best.pt`` by val mAP, so val
figures of the selected checkpoint are optimistic; figures on images nothing was selected on are not.

Example:
    >>> carved = carve_test_split("data.yaml", "/tmp/split/data.yaml", test_fraction=0.5, seed=0)
    >>> print(carved.summary())
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from base.dataset import DatasetSpec, list_images, load_data_yaml
from base.errors import ToolchainError
from base.fileio import atomic_path, check_distinct_paths

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CarvedSplit:
    """What ``carve_test_split`` wrote.

    Attributes:
        data: The new data.yaml.
        val: The list file of the images left in val.
        test: The list file of the images moved to test.
        val_images: The images in ``val``.
        test_images: The images in ``test``.
    """

    data: Path
    val: Path
    test: Path
    val_images: list[Path]
    test_images: list[Path]

    def summary(self) -> str:
        """One line: where the split went and how many images each part got."""
        return (f"{self.data}: val {len(self.val_images)} images ({self.val.name}), "
                f"test {len(self.test_images)} images ({self.test.name})")  # fmt: skip


def split_images(images: list[Path], test_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Draw ``round(test_fraction * n)`` of ``images`` for test, the rest stay in val; both keep the
    input order. The same images, fraction and seed give the same split.

    Raises:
        ToolchainError: The fraction leaves val or test without an image.
    """
    n = len(images)
    n_test = round(test_fraction * n)
    if not 0 < n_test < n:
        part = "test" if n_test == 0 else "val"
        raise ToolchainError(f"--test-fraction {test_fraction} of {n} val images leaves {part} without an image; "
                             f"choose a fraction between {1 / n:.3g} and {1 - 1 / n:.3g}")  # fmt: skip
    chosen = set(np.random.default_rng(seed).permutation(n)[:n_test].tolist())
    test = [p for i, p in enumerate(images) if i in chosen]
    val = [p for i, p in enumerate(images) if i not in chosen]
    return val, test


def _val_images(data: str | Path) -> tuple[DatasetSpec, list[Path]]:
    """The spec of ``data`` and its val images, once each, in the order the split lists them."""
    spec = load_data_yaml(data)
    if "test" in spec.splits:
        raise ToolchainError(f"{data}: already has a test split ({', '.join(map(str, spec.splits['test']))}); "
                             "use it as it is, or remove its 'test' key to carve a new one from val")  # fmt: skip
    images = list(dict.fromkeys(list_images(spec.splits["val"])))  # an image listed twice is one image
    if not images:
        raise ToolchainError(f"{data}: the val split ({', '.join(map(str, spec.splits['val']))}) holds no image")
    return spec, images


def carve_test_split(data: str | Path, out: str | Path, test_fraction: float = 0.5, seed: int = 0) -> CarvedSplit:
    """Write ``out`` (a data.yaml) and, beside it, ``<stem>.val.txt`` and ``<stem>.test.txt``: the val
    images of ``data`` split in two by ``split_images``. Train and the class names stay as they were;
    every path written is absolute, so the new data.yaml works from any folder.

    Args:
        data: The data.yaml with a val split and no test split.
        out: The new data.yaml (not ``data`` itself).
        test_fraction: Share of the val images that go to test, in (0, 1).
        seed: Seed of the draw.

    Returns:
        What was written.

    Raises:
        ToolchainError: ``data`` has no usable val split or already has a test split, the fraction
            leaves a part empty, or ``out`` would overwrite ``data``.
    """
    out = Path(out)
    lists = {"val": out.with_name(f"{out.stem}.val.txt"), "test": out.with_name(f"{out.stem}.test.txt")}
    check_distinct_paths({"--out": out, "its val list": lists["val"], "its test list": lists["test"]}, {"--data": data})
    spec, images = _val_images(data)
    val, test = split_images(images, test_fraction, seed)
    for part, files in (("val", val), ("test", test)):
        with atomic_path(lists[part]) as tmp:
            tmp.write_text("".join(f"{p}\n" for p in files))
    train = [str(p) for p in spec.splits["train"]]
    body = {"train": train[0] if len(train) == 1 else train, "val": str(lists["val"].resolve()),
            "test": str(lists["test"].resolve()), "names": dict(enumerate(spec.names))}  # fmt: skip
    origin = f"# val of {Path(data).resolve()} split by toolchain split-data: fraction {test_fraction}, seed {seed}\n"
    with atomic_path(out) as tmp:
        tmp.write_text(origin + yaml.safe_dump(body, sort_keys=False))
    carved = CarvedSplit(out, lists["val"], lists["test"], val, test)
    logger.info("Carved %s", carved.summary())
    return carved
