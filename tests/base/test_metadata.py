"""Model metadata: the sidecar, and the metadata inside an ONNX in ultralytics' format beside ours; our readers
read both our files and ultralytics' exports (which have no sidecar)."""

from __future__ import annotations

import ast

import onnx
import pytest
from onnx import TensorProto, helper

from base.errors import ToolchainError
from base.metadata import ModelMetadata, sidecar_path

NAMES = ["stop", "yield", "speed limit 50"]


def tiny_onnx(path, props: dict[str, str] | None = None):
    """An Identity graph with the given ``metadata_props``."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 32, 32])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["images"], ["output0"])], "g", [x], [y]))
    for key, value in (props or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def ultralytics_reads(props: dict[str, str]) -> dict:
    """What ultralytics' AutoBackend makes of ONNX metadata (nn/backends/base.py, ``apply_metadata``, 8.4)."""
    out = dict(props)
    for k, v in props.items():
        if k in {"stride", "batch", "channels"}:
            out[k] = int(v)
        elif k in {"imgsz", "names", "kpt_shape", "kpt_names", "args", "end2end"}:
            out[k] = ast.literal_eval(v)
    return out


def test_onnx_props_are_in_ultralytics_format():
    meta = ModelMetadata(NAMES, (384, 640), stride=32, precision="int8")
    props = meta.onnx_props(batch=4)
    read = ultralytics_reads(props)
    assert read["names"] == {0: "stop", 1: "yield", 2: "speed limit 50"}
    assert read["imgsz"] == [384, 640] and read["stride"] == 32 and read["batch"] == 4 and read["task"] == "detect"
    assert props["precision"] == "int8" and props["producer"] == "toolchain"


def test_our_onnx_metadata_round_trips(tmp_path):
    meta = ModelMetadata(NAMES, (96, 128), stride=32, precision="fp16")
    path = tiny_onnx(tmp_path / "m.onnx", meta.onnx_props())
    back = ModelMetadata.load(path)  # no sidecar: read from inside the ONNX
    assert (back.names, back.imgsz, back.stride, back.precision) == (NAMES, (96, 128), 32, "fp16")
    assert back.extra["producer"] == "toolchain"


def test_an_ultralytics_export_is_read_without_a_sidecar(tmp_path):
    props = {"author": "Ultralytics", "version": "8.4.190", "stride": "32", "task": "detect", "batch": "1",
             "imgsz": "[640, 640]", "names": "{0: 'person', 1: 'bicycle'}", "args": "{'dynamic': False}"}  # fmt: skip
    path = tiny_onnx(tmp_path / "yolov8n.onnx", props)
    meta = ModelMetadata.find(path)
    assert meta.names == ["person", "bicycle"] and meta.imgsz == (640, 640) and meta.stride == 32
    assert meta.precision == "fp32" and meta.extra == {"from": "onnx metadata", "producer": "ultralytics",
                                                       "ultralytics_version": "8.4.190"}  # fmt: skip


def test_older_toolchain_exports_are_still_read(tmp_path):
    path = tiny_onnx(tmp_path / "old.onnx", {"names": "stop,yield", "imgsz": "64,64", "stride": "32",
                                             "precision": "int8", "producer": "toolchain"})  # fmt: skip
    meta = ModelMetadata.load(path)
    assert meta.names == ["stop", "yield"] and meta.imgsz == (64, 64) and meta.precision == "int8"


def test_the_sidecar_wins_over_the_onnx_metadata(tmp_path):
    path = tiny_onnx(tmp_path / "m.onnx", ModelMetadata(["inside"], (32, 32)).onnx_props())
    ModelMetadata(["sidecar"], (32, 32), source="x.pt").save(path)
    assert ModelMetadata.load(path).names == ["sidecar"] and ModelMetadata.find(path).source == "x.pt"


def test_models_without_metadata(tmp_path):
    bare = tiny_onnx(tmp_path / "bare.onnx")
    assert ModelMetadata.find(bare) is None and ModelMetadata.find(tmp_path / "m.engine") is None
    with pytest.raises(ToolchainError, match="sidecar not found beside"):
        ModelMetadata.load(bare)
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(ToolchainError, match="text.onnx: not a readable ONNX model"):
        ModelMetadata.find(tmp_path / "text.onnx")
    sidecar_path(bare).write_text("{")
    with pytest.raises(ToolchainError, match="not a valid model sidecar"):
        ModelMetadata.find(bare)  # a broken sidecar is reported, not skipped


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("names", "{1: 'a', 2: 'b'}", "class ids"), ("names", "{'a': 1}", "neither"), ("imgsz", "[0, 64]", "imgsz"),
     ("imgsz", "big", "imgsz"), ("stride", "-32", "stride")],
)  # fmt: skip
def test_bad_metadata_is_named(tmp_path, key, value, match):
    props = {"names": "{0: 'a'}", "imgsz": "[64, 64]", "stride": "32", key: value}
    path = tiny_onnx(tmp_path / "bad.onnx", props)
    with pytest.raises(ToolchainError, match=rf"bad.onnx: metadata {key}.*{match}|bad.onnx: metadata {match}"):
        ModelMetadata.find(path)
