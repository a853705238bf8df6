"""A far-away variant of a YOLO data set: its photos tiled k x k onto one canvas, labels mapped, so that
every object is k times smaller. Small objects are where INT8 loses accuracy; this makes a hard case
out of any real data set without new photographs.

The photos are split into pools before any canvas is drawn: test canvases come from the source's test
split (its val split when it has none), train and val canvases from its train split (a seeded share
held out for val). No photo is in two pools, so no test sign was seen in training: a train photo that
is a test photo again, byte for byte or by its difference hash, is left out. A canvas holds k x k
distinct photos of its pool; a pool is drawn through in seeded
permutations, so every photo is used about equally often (a pool smaller than the canvases need
repeats photos across canvases of the same split, in other neighbours and cells: ``sources.csv``
lists each canvas's photos, and the summary says how often each was reused).

Example:
    >>> data = tile_dataset("../shared/datasets/road-signs/data.yaml", "data/hard/road-signs-k2", TileConfig(k=2))
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from base.dataset import load_data_yaml, load_split
from base.dataset.split import ImageRecord
from base.errors import ToolchainError
from toolchain.config.fields import ImageSize, PositiveInt, Range, check_fields
from toolchain.data.folder import write_folder

logger = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
PAD = 114
"""Grey of the letterbox around a photo in its cell (ultralytics' letterbox colour)."""


@dataclass(frozen=True)
class TileConfig:
    """How the far-away variant is drawn.

    Attributes:
        k: Photos per canvas side: k x k photos per canvas, each object k times smaller.
        imgsz: Side of the square canvas in pixels (a photo's longest side fills imgsz / k).
        train: Canvases in the train split.
        val: Canvases in the val split (best.pt is chosen on it).
        test: Canvases in the test split (the report's split).
        val_fraction: Share of the source's train photos held out for the val canvases.
        seed: Seed of the pools and the draw: the same source and config give the same files.
        jpeg_quality: JPEG quality of the canvases.
    """

    k: Annotated[int, Range(ge=1, le=8)] = 2
    imgsz: ImageSize = 384
    train: PositiveInt = 600
    val: PositiveInt = 150
    test: PositiveInt = 300
    val_fraction: Annotated[float, Range(gt=0, lt=1)] = 0.1
    seed: int = 0
    jpeg_quality: Annotated[int, Range(ge=50, le=100)] = 92

    def __post_init__(self) -> None:
        check_fields(self)
        if self.imgsz // self.k < 16:
            raise ToolchainError(f"tiles: imgsz {self.imgsz} / k {self.k} leaves cells under 16 px; "
                                 "raise imgsz or lower k")  # fmt: skip


@dataclass(frozen=True)
class Pools:
    """The source photos each split's canvases are drawn from (disjoint)."""

    train: list[ImageRecord]
    val: list[ImageRecord]
    test: list[ImageRecord]

    def of(self, split: str) -> list[ImageRecord]:
        """The pool of ``split``."""
        return {"train": self.train, "val": self.val, "test": self.test}[split]


NEAR_DUPLICATE_BITS = 6
"""Photos whose 64-bit difference hashes differ in at most this many bits are one scene (road-signs holds
a byte-identical pair across train and val, and a second shot of the same sign at 5 bits; unrelated
photos there are 7 bits or more apart)."""


def difference_hash(path: Path) -> int:
    """64-bit difference hash (dHash) of a photo: signs of horizontal gradients on a 9 x 8 grey thumbnail."""
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise ToolchainError(f"{path}: cannot be decoded any more (it was when the split was read)")
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return int.from_bytes(np.packbits(small[:, 1:] > small[:, :-1]).tobytes(), "big")


def near_duplicates(candidates: list[ImageRecord], held_out: list[ImageRecord]) -> dict[Path, Path]:
    """Each of ``candidates`` that is the same photo as one of ``held_out`` (same bytes, or difference
    hashes within ``NEAR_DUPLICATE_BITS``), to that photo."""
    digests = {hashlib.sha256(r.path.read_bytes()).digest(): r.path for r in held_out}
    hashes = [(difference_hash(r.path), r.path) for r in held_out]
    out = {}
    for record in candidates:
        same = digests.get(hashlib.sha256(record.path.read_bytes()).digest())
        if same is None:
            h = difference_hash(record.path)
            same = next((p for g, p in hashes if (g ^ h).bit_count() <= NEAR_DUPLICATE_BITS), None)
        if same is not None:
            out[record.path] = same
    return out


def photo_pools(data: str | Path, cfg: TileConfig) -> tuple[list[str], Pools, dict[Path, Path]]:
    """The source's class names, its photos split into the train, val and test pools, and the train
    photos left out because they are a test photo again (to that photo).

    Raises:
        ToolchainError: A pool is smaller than k x k photos.
    """
    spec = load_data_yaml(data)
    held_out = "test" if "test" in spec.splits else "val"
    test = load_split(spec, held_out).images
    source_train = load_split(spec, "train").images
    leaks = near_duplicates(source_train, test)
    for photo, same in leaks.items():
        logger.warning("tiles: %s is left out of train and val: the same photo as %s (%s)", photo, same, held_out)
    source_train = [r for r in source_train if r.path not in leaks]
    order = np.random.default_rng(cfg.seed).permutation(len(source_train))
    n_val = max(1, round(cfg.val_fraction * len(source_train)))
    val = [source_train[i] for i in sorted(order[:n_val])]
    train = [source_train[i] for i in sorted(order[n_val:])]
    pools = Pools(train, val, test)
    for split in SPLITS:
        if len(pools.of(split)) < cfg.k * cfg.k:
            source = held_out if split == "test" else "train"
            raise ToolchainError(
                f"{data}: the {split} canvases need {cfg.k * cfg.k} distinct photos, "
                f"but their pool ({source} split) has {len(pools.of(split))}; lower k or val_fraction"
            )
    return spec.names, pools, leaks


def draws(n_photos: int, n_canvases: int, per_canvas: int, rng: np.random.Generator) -> list[list[int]]:
    """Photo indices of each canvas: ``per_canvas`` distinct photos, taken in order from seeded
    permutations of the pool so every photo is used equally often (to within one)."""
    stream: list[int] = []
    canvases = []
    for _ in range(n_canvases):
        picked: list[int] = []
        while len(picked) < per_canvas:
            if not stream:
                stream = rng.permutation(n_photos).tolist()
            i = stream.pop()
            if i in picked:  # a permutation's seam can repeat a photo: put it back for the next canvas
                stream.insert(0, i)
                continue
            picked.append(i)
        canvases.append(picked)
    return canvases


def tile_canvas(photos: list[ImageRecord], k: int, imgsz: int) -> tuple[np.ndarray, np.ndarray]:
    """One canvas: photo ``i`` letterboxed into cell ``(i // k, i % k)`` of a ``k x k`` grid.

    Returns:
        The BGR canvas (uint8, ``imgsz`` square) and labels ``[n, 5]`` float32 ``class cx cy w h``
        normalized to the canvas (ultralytics' YOLO format).
    """
    cell = imgsz // k
    canvas = np.full((imgsz, imgsz, 3), PAD, np.uint8)
    labels = []
    for i, record in enumerate(photos):
        img = cv2.imread(str(record.path), cv2.IMREAD_COLOR)
        if img is None:
            raise ToolchainError(f"{record.path}: cannot be decoded any more (it was when the pools were read)")
        h, w = img.shape[:2]
        scale = cell / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        x0 = (i % k) * cell + (cell - nw) // 2
        y0 = (i // k) * cell + (cell - nh) // 2
        canvas[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        boxes = record.boxes * np.array([nw / w, nh / h, nw / w, nh / h], np.float32) + [x0, y0, x0, y0]
        for c, (bx0, by0, bx1, by1) in zip(record.classes, boxes):
            labels.append([int(c), (bx0 + bx1) / 2, (by0 + by1) / 2, bx1 - bx0, by1 - by0])
    out = np.array(labels, np.float32).reshape(-1, 5)
    out[:, 1:] /= imgsz
    return canvas, out


def _write_split(root: Path, split: str, pool: list[ImageRecord], cfg: TileConfig, rows: list) -> None:
    (root / "images" / split).mkdir(parents=True)
    (root / "labels" / split).mkdir(parents=True)
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split)])
    n = {"train": cfg.train, "val": cfg.val, "test": cfg.test}[split]
    boxes = 0
    for index, picked in enumerate(tqdm(draws(len(pool), n, cfg.k * cfg.k, rng), desc=f"tiles {split}", unit="img")):
        photos = [pool[i] for i in picked]
        canvas, labels = tile_canvas(photos, cfg.k, cfg.imgsz)
        stem = f"{split}_{index:06d}"
        cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
        lines = [f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}" for c, x, y, w, h in labels]
        (root / "labels" / split / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines))
        rows += [(split, stem, cell, str(p.path)) for cell, p in enumerate(photos)]
        boxes += len(lines)
    uses = n * cfg.k * cfg.k / len(pool)
    logger.info("tiles %s: %d canvases, %d boxes, from %d photos (each used %.1f times)",
                split, n, boxes, len(pool), uses)  # fmt: skip


def tile_dataset(data: str | Path, out: str | Path, cfg: TileConfig, force: bool = False) -> Path:
    """Write the far-away variant of ``data`` to ``out`` (atomically) and return its ``data.yaml``.

    ``out`` holds images/ and labels/ for train, val and test, ``sources.csv`` (split, canvas, cell,
    source photo; first the train photos left out as a test photo again) and ``generator.json`` (the
    source and the config: a folder made by the same ones is reused; another one is replaced only with
    ``force``).
    """
    stamp = {"source": str(Path(data).resolve()), **asdict(cfg)}

    def write(root: Path) -> None:
        names, pools, leaks = photo_pools(data, cfg)
        rows: list[tuple] = [("left out", "", "", f"{photo} = {same}") for photo, same in leaks.items()]
        for split in SPLITS:
            _write_split(root, split, pools.of(split), cfg, rows)
        with (root / "sources.csv").open("w", newline="") as f:
            csv.writer(f).writerows([("split", "canvas", "cell", "photo"), *rows])
        body = {"train": "images/train", "val": "images/val", "test": "images/test", "names": dict(enumerate(names))}
        header = (f"# {cfg.k}x{cfg.k} tiles of {stamp['source']} (toolchain tile-data): every object {cfg.k} "
                  "times smaller; test canvases from photos no train or val canvas holds. Paths relative to this "
                  "file.\n")  # fmt: skip
        (root / "data.yaml").write_text(header + yaml.safe_dump(body, sort_keys=False))

    return write_folder(out, stamp, write, force, what="tiled data")
