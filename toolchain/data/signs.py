"""Vietnamese-style road-sign templates drawn with OpenCV (no fonts, no downloads).

Each template is a square BGR image with an alpha mask, drawn once at ``TEMPLATE_SIZE`` and cached.
Shapes and colours follow QCVN 41 road signs: red-ring prohibition discs, blue mandatory discs,
red-bordered yellow warning triangles, the red stop octagon and the blue pedestrian-crossing square.
Distractors are sign-like shapes of classes we do not label (direction boards, priority diamonds).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

TEMPLATE_SIZE = 128
SIGN_CLASSES: tuple[str, ...] = (
    "no_entry",
    "no_parking",
    "no_stopping",
    "no_left_turn",
    "no_right_turn",
    "speed_limit",
    "stop",
    "pedestrian_crossing",
    "warning",
    "go_straight",
)
SPEED_LIMITS = (30, 40, 50, 60, 70, 80)
FINE_CLASSES: tuple[str, ...] = tuple(
    n for c in SIGN_CLASSES for n in ([f"speed_limit_{v}" for v in SPEED_LIMITS] if c == "speed_limit" else [c])
)
"""The harder class list: each speed limit a class of its own (15 classes), told apart only by the digits,
which a small sign renders in a few pixels."""

RED = (40, 30, 200)
BLUE = (170, 80, 20)
WHITE = (245, 245, 245)
BLACK = (25, 25, 25)
YELLOW = (20, 200, 250)
GREEN = (60, 130, 30)

S = TEMPLATE_SIZE
C = S // 2
R = S // 2 - 2
AA = cv2.LINE_AA


def _canvas() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((S, S, 3), np.uint8), np.zeros((S, S), np.uint8)


def _disc(fill: tuple, ring: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    img, mask = _canvas()
    cv2.circle(img, (C, C), R, ring or fill, -1, AA)
    cv2.circle(mask, (C, C), R, 255, -1, AA)
    if ring is not None:
        cv2.circle(img, (C, C), int(R * 0.78), fill, -1, AA)
    return img, mask


def _slash(img: np.ndarray, colour: tuple, mirrored: bool = False) -> None:
    d = int(R * 0.55)
    p, q = (C - d, C - d), (C + d, C + d)
    if mirrored:
        p, q = (C + d, C - d), (C - d, C + d)
    cv2.line(img, p, q, colour, int(S * 0.09), AA)


def _arrow(img: np.ndarray, colour: tuple, points: list[tuple[int, int]], head: float) -> None:
    pts = np.array(points, np.int32)
    cv2.polylines(img, [pts], False, colour, int(S * 0.09), AA)
    (x0, y0), (x1, y1) = points[-2], points[-1]
    direction = np.array([x1 - x0, y1 - y0], np.float32)
    direction /= np.linalg.norm(direction) + 1e-6
    normal = np.array([-direction[1], direction[0]])
    tip = np.array([x1, y1]) + direction * head * 0.6
    base = np.array([x1, y1]) - direction * head * 0.4
    tri = np.array([tip, base + normal * head * 0.6, base - normal * head * 0.6], np.int32)
    cv2.fillPoly(img, [tri], colour, AA)


def _no_turn(right: bool) -> tuple[np.ndarray, np.ndarray]:
    img, mask = _disc(WHITE, RED)
    side = -1 if right else 1
    _arrow(img, BLACK, [(C + 14 * side, C + 38), (C + 14 * side, C - 6), (C - 22 * side, C - 6)], head=30)
    _slash(img, RED)
    return img, mask


def _speed_limit(limit: int) -> tuple[np.ndarray, np.ndarray]:
    img, mask = _disc(WHITE, RED)
    text = str(limit)
    font, scale, thick = cv2.FONT_HERSHEY_DUPLEX, 1.9, 5
    (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
    cv2.putText(img, text, (C - tw // 2, C + th // 2), font, scale, BLACK, thick, AA)
    return img, mask


def _polygon(n: int, radius: float, phase: float) -> np.ndarray:
    angles = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([C + radius * np.cos(angles), C + radius * np.sin(angles)], 1).astype(np.int32)


def _stop() -> tuple[np.ndarray, np.ndarray]:
    img, mask = _canvas()
    outer = _polygon(8, R / np.cos(np.pi / 8) * 0.98, np.pi / 8)
    cv2.fillPoly(mask, [outer], 255, AA)
    cv2.fillPoly(img, [outer], WHITE, AA)
    cv2.fillPoly(img, [_polygon(8, R * 0.95, np.pi / 8)], RED, AA)
    font, scale, thick = cv2.FONT_HERSHEY_DUPLEX, 1.05, 3
    (tw, th), _ = cv2.getTextSize("STOP", font, scale, thick)
    cv2.putText(img, "STOP", (C - tw // 2, C + th // 2), font, scale, WHITE, thick, AA)
    return img, mask


def _triangle(fill: tuple, border: tuple) -> tuple[np.ndarray, np.ndarray]:
    img, mask = _canvas()
    outer = np.array([(C, 4), (S - 3, S - 12), (2, S - 12)], np.int32)
    inner = np.array([(C, 30), (S - 24, S - 24), (23, S - 24)], np.int32)
    cv2.fillPoly(mask, [outer], 255, AA)
    cv2.fillPoly(img, [outer], border, AA)
    cv2.fillPoly(img, [inner], fill, AA)
    return img, mask


def _warning() -> tuple[np.ndarray, np.ndarray]:
    img, mask = _triangle(YELLOW, RED)
    cv2.line(img, (C, 50), (C, 82), BLACK, 9, AA)
    cv2.circle(img, (C, 94), 5, BLACK, -1, AA)
    return img, mask


def _pedestrian_crossing() -> tuple[np.ndarray, np.ndarray]:
    img, mask = _canvas()
    cv2.rectangle(mask, (4, 4), (S - 5, S - 5), 255, -1, AA)
    cv2.rectangle(img, (4, 4), (S - 5, S - 5), BLUE, -1, AA)
    cv2.fillPoly(img, [np.array([(C, 14), (S - 14, S - 18), (14, S - 18)], np.int32)], WHITE, AA)
    for x in range(30, S - 30, 14):
        cv2.line(img, (x, S - 28), (x + 6, S - 28), BLACK, 4, AA)
    cv2.circle(img, (C + 2, 48), 7, BLACK, -1, AA)
    cv2.line(img, (C + 2, 56), (C - 2, 78), BLACK, 6, AA)
    cv2.line(img, (C - 2, 78), (C - 12, 96), BLACK, 5, AA)
    cv2.line(img, (C - 2, 78), (C + 10, 96), BLACK, 5, AA)
    cv2.line(img, (C, 62), (C - 12, 74), BLACK, 4, AA)
    cv2.line(img, (C, 62), (C + 12, 70), BLACK, 4, AA)
    return img, mask


def _go_straight() -> tuple[np.ndarray, np.ndarray]:
    img, mask = _disc(BLUE)
    _arrow(img, WHITE, [(C, C + 40), (C, C - 20)], head=36)
    return img, mask


def _no_entry() -> tuple[np.ndarray, np.ndarray]:
    img, mask = _disc(RED)
    cv2.rectangle(img, (C - 42, C - 10), (C + 42, C + 10), WHITE, -1, AA)
    return img, mask


def _no_parking(cross: bool) -> tuple[np.ndarray, np.ndarray]:
    img, mask = _disc(BLUE, RED)
    _slash(img, RED)
    if cross:
        _slash(img, RED, mirrored=True)
    return img, mask


@functools.cache
def sign_templates(class_id: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Return the template variants (BGR image, alpha mask) of one sign class.

    Args:
        class_id: Index into ``SIGN_CLASSES``.

    Returns:
        One or more ``(image, mask)`` pairs of shape ``(S, S, 3)`` and ``(S, S)``, uint8.
    """
    name = SIGN_CLASSES[class_id]
    if name == "speed_limit":
        return tuple(_speed_limit(v) for v in SPEED_LIMITS)
    makers = {
        "no_entry": _no_entry,
        "no_parking": lambda: _no_parking(cross=False),
        "no_stopping": lambda: _no_parking(cross=True),
        "no_left_turn": lambda: _no_turn(right=False),
        "no_right_turn": lambda: _no_turn(right=True),
        "stop": _stop,
        "pedestrian_crossing": _pedestrian_crossing,
        "warning": _warning,
        "go_straight": _go_straight,
    }
    return (makers[name](),)


def class_templates(fine: bool = False) -> tuple[tuple[tuple[np.ndarray, np.ndarray], ...], ...]:
    """The template variants of every class, by class id: of ``SIGN_CLASSES``, or of ``FINE_CLASSES``
    (each speed limit's one template a class)."""
    classes = tuple(sign_templates(c) for c in range(len(SIGN_CLASSES)))
    if not fine:
        return classes
    limit = SIGN_CLASSES.index("speed_limit")
    return classes[:limit] + tuple((v,) for v in classes[limit]) + classes[limit + 1 :]


@functools.cache
def distractor_templates() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Sign-like shapes that are not labelled: the detector must learn to ignore them."""
    out = []
    img, mask = _canvas()  # green direction board with text-like bars
    cv2.rectangle(mask, (2, 24), (S - 3, S - 25), 255, -1)
    cv2.rectangle(img, (2, 24), (S - 3, S - 25), GREEN, -1)
    cv2.rectangle(img, (8, 30), (S - 9, S - 31), WHITE, 2)
    for y in (48, 66, 84):
        cv2.line(img, (20, y), (S - 30, y), WHITE, 5)
    out.append((img, mask))
    img, mask = _canvas()  # yellow priority diamond
    diamond = _polygon(4, R, 0.0)
    cv2.fillPoly(mask, [diamond], 255, AA)
    cv2.fillPoly(img, [diamond], WHITE, AA)
    cv2.fillPoly(img, [_polygon(4, R * 0.7, 0.0)], YELLOW, AA)
    out.append((img, mask))
    img, mask = _disc(WHITE)  # end of all restrictions: white disc, grey stripes
    for k in (-16, 0, 16):
        cv2.line(img, (C - 30 + k, C + 30 + k), (C + 30 + k, C - 30 + k), (90, 90, 90), 3, AA)
    out.append((img, mask))
    img, mask = _canvas()  # white information board with black text-like bars
    cv2.rectangle(mask, (14, 4), (S - 15, S - 5), 255, -1)
    cv2.rectangle(img, (14, 4), (S - 15, S - 5), WHITE, -1)
    for y in range(24, S - 10, 22):
        cv2.line(img, (26, y), (S - 40, y), BLACK, 6)
    out.append((img, mask))
    img, mask = _disc((0, 140, 255))  # orange disc (traffic cone top, advertisement)
    out.append((img, mask))
    return tuple(out)
