"""Fuzzing the parsers of user files with hypothesis: label lines and files, data.yaml, model and
engine sidecars, quantization configs. Whatever the input, the only exception is ``ToolchainError``
(one line for the user), never a traceback. Examples are bounded so that this runs in ``make test``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from base.dataset import load_data_yaml, load_split, parse_label_line, read_labels
from base.errors import ToolchainError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LIGHT = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Tokens a label line may hold: numbers as Python and C print them, the non-finite spellings float()
# accepts, digits of other scripts (float() takes them), separators and junk.
NUMBER_WORDS = ["nan", "NaN", "inf", "-inf", "1e400", "-0", "0x10", "1_0", "\u0661", "\u00bd", "+", ".", "1e", "0.5"]
TOKEN = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers(-5, 30).map(str),
    st.sampled_from(NUMBER_WORDS), st.text(max_size=4),
)  # fmt: skip
LABEL_LINE = st.one_of(st.text(max_size=60), st.lists(TOKEN, max_size=7).map(" ".join))


@FUZZ
@given(line=LABEL_LINE, nc=st.integers(1, 12))
def test_label_line_is_values_or_a_reason(line, nc):
    values, reason = parse_label_line(line, nc)
    if values is None:
        assert isinstance(reason, str) and reason
        return
    assert reason is None and len(values) == 5 and all(math.isfinite(v) for v in values)
    cls, cx, cy, w, h = values
    assert cls == int(cls) and 0 <= cls < nc
    assert all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)) and w > 0 and h > 0


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), st.lists(LABEL_LINE, max_size=6).map(lambda ls: "\n".join(ls).encode())))
def test_label_file_never_raises(tmp_path, data):
    path = tmp_path / "labels.txt"
    path.write_bytes(data)
    rows, problems = read_labels(path, nc=5)
    assert rows.dtype == np.float32 and rows.shape[1] == 5
    assert all(p.startswith(str(path)) for p in problems)


# data.yaml values: what YAML can hold, and paths inside the test folder (never absolute, never "..",
# so a fuzzed split cannot send the loader walking the file system).
PATHS = st.sampled_from(
    ["images/val", "images/val/x.jpg", "list.txt", "nowhere", ".", "", "images", "x\x00y", "a" * 300]
)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), PATHS,
                   st.text(max_size=8).filter(lambda t: not t.startswith(("/", "~")) and ".." not in t))  # fmt: skip
VALUE = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.one_of(st.integers(-1, 3), st.text(max_size=3)),
                                                                        inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
# Mostly a good data.yaml with one or two keys fuzzed, so that the loader gets past its first check.
DATA_YAML = st.fixed_dictionaries(
    {"train": st.one_of(st.just("images/val"), VALUE), "val": st.one_of(st.just("images/val"), PATHS, VALUE),
     "names": st.one_of(st.just(["a", "b"]), st.just({0: "a", 1: "b"}), VALUE)},
    optional={"path": st.one_of(st.just("."), VALUE), "test": st.one_of(PATHS, VALUE), "nc": VALUE},
)  # fmt: skip


def _dataset(root) -> None:
    import cv2

    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / "val" / "x.jpg"), np.zeros((16, 16, 3), np.uint8))
    (root / "labels" / "val" / "x.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "list.txt").write_text("images/val/x.jpg\nmissing.jpg\n")


def _load_everything(path) -> None:
    try:
        spec = load_data_yaml(path)
        for split in spec.splits:
            load_split(spec, split)
    except ToolchainError as exc:
        assert str(exc) and "\n" not in str(exc)


@FUZZ
@given(raw=DATA_YAML)
def test_data_yaml_mapping_is_loaded_or_refused_in_one_line(tmp_path, monkeypatch, raw):
    monkeypatch.chdir(tmp_path)  # 'path:' is relative to the working directory
    _dataset(tmp_path)
    (tmp_path / "data.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    _load_everything(tmp_path / "data.yaml")


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_data_yaml_of_any_bytes_is_loaded_or_refused(tmp_path, monkeypatch, data):
    monkeypatch.chdir(tmp_path)
    _dataset(tmp_path)
    (tmp_path / "data.yaml").write_bytes(data)
    _load_everything(tmp_path / "data.yaml")


# Sidecars: the fields of ModelMetadata with values of any JSON type, plus unknown keys.
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)
GOOD = {"names": st.just(["a"]), "imgsz": st.just([64, 64]), "version": st.just(1), "extra": st.dictionaries(
    st.sampled_from(["tensorrt", "compute_capability", "gpu", "precision"]), JSON, max_size=4)}  # fmt: skip
FIELDS = ["names", "imgsz", "stride", "precision", "source", "quantization", "extra", "version", "other"]
SIDECAR = st.fixed_dictionaries(
    {f: st.one_of(GOOD[f], JSON) for f in GOOD}, optional={f: JSON for f in FIELDS if f not in GOOD}
)


@FUZZ
@given(sidecar=st.one_of(SIDECAR, JSON))
def test_engine_sidecar_is_read_or_refused(tmp_path, sidecar):
    from base.metadata import ModelMetadata
    from deploy.engine.config import check_engine_compatible

    engine = tmp_path / "model.int8.engine"
    engine.write_bytes(b"engine")
    (tmp_path / "model.int8.engine.json").write_text(json.dumps(sidecar))
    try:
        meta = ModelMetadata.load(engine)
        check_engine_compatible(engine, meta.extra, "10.3.0", "8.7")
    except ToolchainError as exc:
        assert str(exc)


@LIGHT
@given(raw=st.dictionaries(st.sampled_from(["input", "weight", "overrides", "target", "num_bits", "skip", "x"]),
                           VALUE, max_size=4))  # fmt: skip
def test_quant_config_is_built_or_refused(raw):
    config = pytest.importorskip("toolchain.quantization.config")
    try:
        config.QuantConfig.from_dict(raw)
    except ToolchainError as exc:
        assert str(exc)
