"""Label lines and files: values or the reason a line is wrong, reported as file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from base.dataset.labels import label_path, parse_label_line, read_labels


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("0 0.5 0.5 0.1", "expected 5 fields"),
        ("2 0.5 0.5 0.1 0.1", "class id 2 out of range"),
        ("0.5 0.5 0.5 0.1 0.1", "out of range"),
        ("0 1.5 0.5 0.1 0.1", r"outside \[0, 1\]"),
        ("0 0.5 0.5 0 0.1", "must be positive"),
        ("a 0.5 0.5 0.1 0.1", "non-numeric"),
    ],
)
def test_bad_label_lines(line, problem):
    values, reason = parse_label_line(line, nc=2)
    assert values is None
    assert reason is not None and __import__("re").search(problem, reason)


def test_good_label_line():
    values, reason = parse_label_line("1 0.5 0.25 0.1 0.2", nc=2)
    assert reason is None and values == [1.0, 0.5, 0.25, 0.1, 0.2]


def test_bad_line_reported_as_file_line(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("0 0.5 0.5 0.1 0.1\n\n5 0.5 0.5 0.1 0.1\n")
    rows, problems = read_labels(path, nc=2)
    assert rows.shape == (1, 5)
    assert problems == [f"{path}:3: class id 5 out of range: expected an integer in [0, 1]"]


def test_label_path_replaces_last_images_folder():
    assert label_path(Path("/d/images/x/images/val/a.jpg")) == Path("/d/images/x/labels/val/a.txt")


@pytest.mark.parametrize("cls", ["nan", "inf", "-inf", "NaN", "1e400"])
def test_non_finite_class_id_is_a_reason_not_a_crash(cls):
    values, reason = parse_label_line(f"{cls} 0.5 0.5 0.1 0.1", nc=2)
    assert values is None and "non-finite" in reason


def test_non_finite_coordinate_is_a_reason(tmp_path):
    values, reason = parse_label_line("0 nan 0.5 0.1 0.1", nc=2)
    assert values is None and "non-finite" in reason
