"""One synthetic street scene: a procedural background with road signs and distractors placed on it.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a scene is a pure
function of its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from toolchain.data.signs import TEMPLATE_SIZE, class_templates, distractor_templates


@dataclass(frozen=True)
class SceneConfig:
    """How a scene is drawn.

    Attributes:
        imgsz: Side of the square image in pixels.
        min_size: Smallest sign side in pixels.
        max_size: Largest sign side in pixels (clipped to 40% of ``imgsz``).
        max_signs: Most labelled signs in one image (at least one is placed).
        max_distractors: Most unlabelled sign-like shapes in one image.
        fine_classes: Label each speed limit as a class of its own (``FINE_CLASSES``, 15 classes).
    """

    imgsz: int = 640
    min_size: float = 10.0
    max_size: float = 150.0
    max_signs: int = 6
    max_distractors: int = 3
    fine_classes: bool = False


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth colour fields, building-like blocks, poles and road lines, with sensor noise."""
    low = rng.integers(30, 230, (4, 4, 3), dtype=np.uint8)
    img = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    texture = rng.integers(0, 60, (size // 16, size // 16, 3), dtype=np.uint8)
    img = cv2.add(img, cv2.resize(texture, (size, size), interpolation=cv2.INTER_LINEAR))
    for _ in range(int(rng.integers(3, 12))):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(size // 20, size // 3, 2)
        colour = tuple(int(c) for c in rng.integers(20, 235, 3))
        cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour, -1)
    for _ in range(int(rng.integers(0, 5))):
        p = tuple(int(v) for v in rng.integers(0, size, 2))
        q = tuple(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(int(c) for c in rng.integers(150, 255, 3))
        cv2.line(img, p, q, colour, int(rng.integers(1, max(2, size // 80))))
    noise = rng.normal(0, rng.uniform(2, 9), img.shape).astype(np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _quad(rng: np.random.Generator, cx: float, cy: float, side: float) -> np.ndarray:
    """Corners of a sign of ``side`` px, rotated up to 15 degrees and seen in perspective."""
    half = side / 2 * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32)
    half[:, 0] *= rng.uniform(0.75, 1.05)  # signs seen from the side look narrower
    a = np.deg2rad(rng.uniform(-15, 15))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    quad = half @ rot.T + rng.uniform(-0.08, 0.08, (4, 2)).astype(np.float32) * side
    return quad + np.array([cx, cy], np.float32)


def _paste(
    rng: np.random.Generator, img: np.ndarray, template: tuple[np.ndarray, np.ndarray], quad: np.ndarray
) -> tuple[int, int, int, int] | None:
    """Warp a template onto ``quad`` with lighting and blur; return its visible box (x0, y0, x1, y1)."""
    h, w = img.shape[:2]
    x0, y0 = np.floor(quad.min(0)).astype(int)
    x1, y1 = np.ceil(quad.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    src = np.array([[0, 0], [TEMPLATE_SIZE, 0], [TEMPLATE_SIZE, TEMPLATE_SIZE], [0, TEMPLATE_SIZE]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, quad - np.array([x0, y0], np.float32))
    size = (int(x1 - x0), int(y1 - y0))
    sign = cv2.warpPerspective(template[0], matrix, size, flags=cv2.INTER_AREA)
    alpha = cv2.warpPerspective(template[1], matrix, size, flags=cv2.INTER_LINEAR)
    gain = rng.uniform(0.55, 1.3) * rng.uniform(0.9, 1.1, 3)
    sign = np.clip(sign * gain, 0, 255)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        sign, alpha = cv2.GaussianBlur(sign, (k, k), 0), cv2.GaussianBlur(alpha, (k, k), 0)
    ys, xs = np.nonzero(alpha > 127)
    if len(xs) == 0:
        return None
    a = alpha[..., None].astype(np.float32) / 255.0
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi * (1 - a) + sign * a).astype(np.uint8)
    return x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1


def _occlude(rng: np.random.Generator, img: np.ndarray, box: tuple[int, int, int, int]) -> None:
    """Cover up to about a third of a sign with a branch- or pole-like block."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    if rng.random() < 0.5:  # from the left or right edge
        cw = int(bw * rng.uniform(0.1, 0.35))
        cx0 = x0 if rng.random() < 0.5 else x1 - cw
        rect = (cx0, y0 - bh // 4, cx0 + cw, y1 + bh // 4)
    else:  # from the bottom
        ch = int(bh * rng.uniform(0.1, 0.35))
        rect = (x0 - bw // 4, y1 - ch, x1 + bw // 4, y1 + bh // 4)
    colour = tuple(int(c) for c in rng.integers(20, 160, 3))
    cv2.rectangle(img, rect[:2], rect[2:], colour, -1)


def _overlaps(box: tuple[int, int, int, int], placed: list[tuple[int, int, int, int]]) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in placed)


def _place(rng: np.random.Generator, img: np.ndarray, cfg: SceneConfig, template, placed: list) -> tuple | None:
    """Try a few positions for one sign that do not overlap the ones already placed."""
    hi = min(cfg.max_size, 0.4 * cfg.imgsz)
    for _ in range(8):
        side = float(np.exp(rng.uniform(np.log(cfg.min_size), np.log(hi))))
        cx, cy = rng.uniform(side / 2, cfg.imgsz - side / 2, 2)
        quad = _quad(rng, cx, cy, side)
        lo, up = quad.min(0), quad.max(0)
        guess = (int(lo[0]) - 2, int(lo[1]) - 2, int(up[0]) + 2, int(up[1]) + 2)
        if _overlaps(guess, placed):
            continue
        if rng.random() < 0.3 and side > 16:  # a pole below the sign
            pole_w = max(2, int(side * 0.08))
            cv2.rectangle(img, (int(cx) - pole_w, int(up[1])), (int(cx) + pole_w, cfg.imgsz), (110, 110, 115), -1)
        box = _paste(rng, img, template, quad)
        if box is not None:
            placed.append(box)
            return box
    return None


def render_scene(rng: np.random.Generator, cfg: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Draw one scene.

    Args:
        rng: The scene's own random generator.
        cfg: Image size and sign sizes.

    Returns:
        The BGR image (uint8, ``imgsz`` square) and the labels ``[n, 5]`` float32 as
        ``class cx cy w h`` normalized to [0, 1] (ultralytics' YOLO format).
    """
    img = background(rng, cfg.imgsz)
    placed: list[tuple[int, int, int, int]] = []
    labels = []
    for _ in range(int(rng.integers(0, cfg.max_distractors + 1))):
        choices = distractor_templates()
        _place(rng, img, cfg, choices[int(rng.integers(len(choices)))], placed)
    for _ in range(int(rng.integers(1, cfg.max_signs + 1))):
        classes = class_templates(cfg.fine_classes)
        cls = int(rng.integers(len(classes)))
        variants = classes[cls]
        box = _place(rng, img, cfg, variants[int(rng.integers(len(variants)))], placed)
        if box is None:
            continue
        if rng.random() < 0.15:
            _occlude(rng, img, box)
        x0, y0, x1, y1 = box
        labels.append([cls, (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
    img = cv2.convertScaleAbs(img, alpha=rng.uniform(0.75, 1.2), beta=rng.uniform(-25, 25))
    out = np.array(labels, np.float32).reshape(-1, 5)
    out[:, 1:] /= cfg.imgsz
    return img, out
