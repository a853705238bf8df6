"""deploy/end_to_end.py: the converter on tiny YOLOv8-shaped ONNX models built here, its detections
against the host path's on the same head outputs, its input against preprocess(), and bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from base.dataset import ImageRecord, Split
from base.errors import ToolchainError
from base.metadata import ModelMetadata, sidecar_path
from deploy.end_to_end import EndToEndConfig, convert, graph_config, main
from deploy.evaluate import predict_split
from deploy.postprocess import END_TO_END_OUTPUTS, PostprocessConfig, from_end_to_end, postprocess
from deploy.preprocess import LetterboxMeta, Preprocessor, preprocess
from deploy.runtime import create_runner

SIZE = 16
ANCHORS = SIZE * SIZE


def _save(nodes, inits, path, inputs=None, outputs=None, opset=17, names=None, out_shape=None):
    inputs = inputs or [helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, 3, SIZE, SIZE])]
    outputs = outputs or [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)]
    model = helper.make_model(helper.make_graph(nodes, "yolo-like", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", opset)])  # fmt: skip
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    if names is not None:
        ModelMetadata(names=names, imgsz=(SIZE, SIZE)).save(path)
    return path


def head_onnx(path, pred: np.ndarray, names: list[str] | None = None):
    """``images`` (read, then multiplied by 0) -> the fixed head output ``pred [B, 4 + nc, N]``."""
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=1),
             helper.make_node("Mul", ["m", "zero"], ["z"]),  # [B, 1, 1, 1] zeros
             helper.make_node("Squeeze", ["z", "ax3"], ["z3"]),
             helper.make_node("Add", ["z3", "pred"], ["output0"])]  # fmt: skip
    inits = [numpy_helper.from_array(np.float32(0), "zero"), numpy_helper.from_array(np.array([3], np.int64), "ax3"),
             numpy_helper.from_array(pred.astype(np.float32), "pred")]  # fmt: skip
    names = names if names is not None else [f"c{i}" for i in range(pred.shape[1] - 4)]
    return _save(nodes, inits, path, names=names, out_shape=[pred.shape[0], pred.shape[1], pred.shape[2]])


def pixels_onnx(path):
    """Every pixel an anchor of one fixed box whose three class scores are its R, G, B in [0, 1]: the
    detections show the network input, value for value."""
    box = np.tile(np.array([[8], [8], [4], [4]], np.float32), (1, 1, ANCHORS))
    nodes = [helper.make_node("Reshape", ["images", "flat"], ["rgb"]),
             helper.make_node("Shape", ["images"], ["s"]),
             helper.make_node("Slice", ["s", "c0", "c1"], ["b"]),
             helper.make_node("Concat", ["b", "box_tail"], ["box_shape"], axis=0),
             helper.make_node("Expand", ["box", "box_shape"], ["boxes"]),
             helper.make_node("Concat", ["boxes", "rgb"], ["output0"], axis=1)]  # fmt: skip
    inits = [numpy_helper.from_array(np.array([0, 3, ANCHORS], np.int64), "flat"),
             numpy_helper.from_array(np.array([0], np.int64), "c0"), numpy_helper.from_array(np.array([1], np.int64), "c1"),
             numpy_helper.from_array(np.array([4, ANCHORS], np.int64), "box_tail"), numpy_helper.from_array(box, "box")]  # fmt: skip
    return _save(nodes, inits, path, names=["r", "g", "b"], out_shape=[None, 7, ANCHORS])


def random_head(seed: int, classes: int, anchors: int = 400, batch: int = 2) -> np.ndarray:
    """Head outputs with clustered boxes (so NMS suppresses) and distinct scores."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(40, 120, (batch, 2, anchors))
    wh = rng.uniform(8, 60, (batch, 2, anchors))
    scores = rng.permutation(batch * classes * anchors).reshape(batch, classes, anchors) / (batch * classes * anchors)
    return np.concatenate([xy, wh, scores], 1).astype(np.float32)


def _same(host, e2e) -> None:
    assert e2e.classes.tolist() == host.classes.tolist()
    np.testing.assert_array_equal(e2e.scores, host.scores)
    np.testing.assert_array_equal(e2e.boxes, host.boxes)


def _e2e_outputs(runner, batch) -> dict:
    return dict(zip(runner.output_names, runner.infer(batch)))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize(("seed", "classes", "multi_label", "max_det", "conf"),
                         [(0, 3, True, 300, 0.001), (1, 5, False, 300, 0.25), (2, 4, True, 7, 0.001),
                          (3, 2, False, 4, 0.1)])  # fmt: skip
def test_detections_equal_the_host_path_on_the_same_head_outputs(tmp_path, backend, seed, classes, multi_label,
                                                                 max_det, conf):  # fmt: skip
    pytest.importorskip(backend)
    pred = random_head(seed, classes)
    cfg = PostprocessConfig(conf=conf, iou=0.5, max_det=max_det, multi_label=multi_label)
    e2e = convert(head_onnx(tmp_path / "m.onnx", pred), cfg=EndToEndConfig(conf, 0.5, max_det, multi_label))
    metas = [LetterboxMeta(1.0, (0.0, 0.0), (400, 400))] * 2
    host = postprocess(pred, metas, cfg)
    assert len({int(c) for d in host for c in d.classes}) > 1  # several classes survive
    if max_det < 300:
        assert all(len(d) == max_det for d in host)  # max_det truncates here
    with create_runner(e2e, backend) as runner:
        assert runner.end_to_end
        outs = _e2e_outputs(runner, np.zeros((2, SIZE, SIZE, 3), np.uint8))
    for h, e in zip(host, from_end_to_end(outs, metas, PostprocessConfig(conf=conf, max_det=max_det))):
        _same(h, e)


def test_padding_rows_and_output_format(tmp_path):
    pred = random_head(4, 3, anchors=50)
    e2e = convert(head_onnx(tmp_path / "m.onnx", pred), cfg=EndToEndConfig(conf=0.5, max_det=400))
    with create_runner(e2e) as runner:
        outs = _e2e_outputs(runner, np.zeros((2, SIZE, SIZE, 3), np.uint8))
    assert list(outs) == list(END_TO_END_OUTPUTS)
    k = 3 * 50  # K = min(max_det, classes x anchors)
    assert outs["det_boxes"].shape == (2, k, 4) and outs["det_scores"].shape == (2, k)
    assert outs["det_classes"].dtype == np.int32 and outs["num_dets"].dtype == np.int32
    n = int(outs["num_dets"][0])
    assert 0 < n < k
    assert (outs["det_scores"][0, n:] == 0).all() and (outs["det_classes"][0, n:] == -1).all()
    assert (outs["det_boxes"][0, n:] == 0).all() and (np.diff(outs["det_scores"][0, :n]) <= 0).all()


@pytest.mark.parametrize("shape", [(SIZE, SIZE), (12, 16), (40, 23)])
def test_uint8_input_gives_what_the_float_path_gives(tmp_path, shape):
    src = pixels_onnx(tmp_path / "px.onnx")
    e2e = convert(src, cfg=EndToEndConfig(conf=0.0, iou=1.0, max_det=3 * ANCHORS, multi_label=True))
    img = np.random.default_rng(0).integers(0, 256, (*shape, 3), np.uint8)
    cfg = PostprocessConfig(conf=0.0, iou=1.0, max_det=3 * ANCHORS)
    with create_runner(src) as raw, create_runner(e2e) as runner:
        batch, metas = preprocess([img], (SIZE, SIZE))
        (host,) = postprocess(raw.infer(batch)[0], metas, cfg)
        canvas, metas8 = Preprocessor((SIZE, SIZE), uint8_nhwc=True)([img])
        (ours,) = from_end_to_end(_e2e_outputs(runner, canvas), metas8, cfg)
    assert len(host) > 200  # nearly every pixel value of every channel is a detection
    _same(host, ours)
    red = np.sort(batch[0, 0].ravel()[batch[0, 0].ravel() > 0])[::-1]
    np.testing.assert_array_equal(ours.scores[ours.classes == 0], red)  # class 0 is R: the image was flipped to RGB


def test_the_sidecar_says_end_to_end_and_runners_see_it(tmp_path):
    src = head_onnx(tmp_path / "m.onnx", random_head(0, 3))
    out = convert(src, cfg=EndToEndConfig(conf=0.01, iou=0.6, max_det=50, multi_label=True))
    assert out == tmp_path / "m.e2e.onnx"
    extra = ModelMetadata.load(out).extra["end_to_end"]
    assert extra["classes"] == 3 and extra["outputs"] == list(END_TO_END_OUTPUTS)
    assert graph_config(out) == EndToEndConfig(0.01, 0.6, 50, True)
    sidecar_path(out).unlink()  # the thresholds travel inside the ONNX too
    assert graph_config(out) == EndToEndConfig(0.01, 0.6, 50, True)
    with create_runner(src) as raw, create_runner(out) as e2e:
        assert not raw.end_to_end and raw.image_size == (SIZE, SIZE)
        assert e2e.end_to_end and e2e.image_size == (SIZE, SIZE) and e2e.input_shape[1:] == (SIZE, SIZE, 3)


def test_predict_split_runs_an_end_to_end_model_as_the_host_path(tmp_path):
    src = pixels_onnx(tmp_path / "px.onnx")
    e2e = convert(src, cfg=EndToEndConfig(conf=0.001, iou=0.7, max_det=300, multi_label=True))
    rng = np.random.default_rng(1)
    records = []
    for i, shape in enumerate([(16, 16), (20, 12), (9, 30)]):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (*shape, 3), np.uint8))
        records.append(ImageRecord(path, shape[1], shape[0], np.zeros(0, np.int64), np.zeros((0, 4), np.float32)))
    split = Split("val", ["r", "g", "b"], records)
    with create_runner(src) as raw, create_runner(e2e) as runner:
        host, ours = predict_split(raw, split), predict_split(runner, split)
    assert all(len(h) > 0 for h in host)
    for h, e in zip(host, ours):
        _same(h, e)


def test_written_atomically(tmp_path, monkeypatch):
    src = head_onnx(tmp_path / "m.onnx", random_head(0, 2))
    out = tmp_path / "out.onnx"
    out.write_bytes(b"old")

    def broken_save(model, path):
        open(path, "wb").write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx, "save", broken_save)
    with pytest.raises(OSError):
        convert(src, out)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json",
                                                                                          "out.onnx"]  # fmt: skip


def _two_outputs(path):
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 6, 8]) for n in ("output0", "output1")]
    nodes = [helper.make_node("Identity", ["p"], ["output0"]), helper.make_node("Identity", ["p"], ["output1"]),
             helper.make_node("Identity", ["images"], ["unused"])]  # fmt: skip
    return _save(nodes, [numpy_helper.from_array(np.zeros((1, 6, 8), np.float32), "p")], path, outputs=outs)


def _bad(kind: str, path):
    if kind == "two outputs":
        return _two_outputs(path)
    if kind == "transposed":  # [B, anchors, 4 + nc]: 16x16 has 4 + 1 + 1 anchor points at strides 8, 16, 32
        return head_onnx(path, np.zeros((1, 6, 5), np.float32), names=["a", "b"])
    if kind == "gray input":
        gray = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 1, SIZE, SIZE])]
        nodes = [helper.make_node("ReduceMean", ["images"], ["output0"], keepdims=1)]
        return _save(nodes, [], path, inputs=gray, out_shape=[1, 1, 1, 1])
    if kind == "not a head":
        nodes = [helper.make_node("ReduceMean", ["images"], ["output0"], keepdims=1)]
        return _save(nodes, [], path, out_shape=[1, 1, 1, 1])
    if kind == "opset 11":
        nodes = [helper.make_node("Identity", ["images"], ["x"]), helper.make_node("Identity", ["p"], ["output0"])]
        return _save(nodes, [numpy_helper.from_array(np.zeros((1, 6, 8), np.float32), "p")], path, opset=11,
                     out_shape=[1, 6, 8])  # fmt: skip
    if kind == "names mismatch":
        return head_onnx(path, np.zeros((1, 7, 50), np.float32), names=["a", "b"])
    if kind == "already end to end":
        return convert(head_onnx(path, random_head(0, 2)), path.with_name("already.onnx"))
    path.write_bytes(b"not an onnx file")
    return path


@pytest.mark.parametrize(("kind", "message"), [
    ("two outputs", r"2 outputs \['output0', 'output1'\]; expected one YOLOv8 detect output \[B, 4 \+ classes"),
    ("transposed", r"is \[1, 6, 5\]: anchors first, transposed\? expected \[B, 4 \+ classes, anchors\]"),
    ("gray input", r"input 'images' is float \[1, 1, 16, 16\]; expected float32 \[B, 3, H, W\]"),
    ("not a head", r"output 'output0' is \[1, 1, 1, 1\]; expected a YOLOv8 detect output"),
    ("opset 11", r"opset 11; the end-to-end graph needs opset 13"),
    ("names mismatch", r"the metadata names 2 classes, the output has 3"),
    ("already end to end", r"already an end-to-end model"),
    ("garbage", r"not a readable ONNX model"),
])  # fmt: skip
def test_bad_input_is_one_line_naming_the_file(tmp_path, capsys, kind, message):
    path = _bad(kind, tmp_path / "bad.onnx")
    with pytest.raises(ToolchainError, match=message) as err:
        convert(path, tmp_path / "out.onnx")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out.onnx").exists()
    assert main([str(path), "--out", str(tmp_path / "out.onnx")]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_command_line_writes_the_thresholds(tmp_path):
    src = head_onnx(tmp_path / "m.onnx", random_head(0, 2))
    assert main([str(src), "--conf", "0.3", "--iou", "0.4", "--max-det", "9"]) == 0
    meta = json.loads(sidecar_path(tmp_path / "m.e2e.onnx").read_text())
    assert {k: meta["extra"]["end_to_end"][k] for k in ("conf", "iou", "max_det", "multi_label")} == {
        "conf": 0.3, "iou": 0.4, "max_det": 9, "multi_label": False}  # fmt: skip
    assert main([str(src), "--max-det", "0"]) == 2  # a bad threshold is a usage error


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_infer_runs_an_end_to_end_model_with_no_new_flag(tmp_path, make_video, capsys, backend):
    from deploy.live.app import main as infer

    pytest.importorskip(backend)
    src = pixels_onnx(tmp_path / "px.onnx")
    e2e = convert(src)  # the live defaults: conf 0.25, IoU 0.7, 300, best class
    video = make_video(tmp_path / "v.avi", frames=4, size=(32, 24))
    rows = {}
    for name, model in (("host", src), ("e2e", e2e)):
        summary = tmp_path / f"{name}.json"
        assert infer(["--model", str(model), "--source", video, "--backend", backend, "--json",
                      str(tmp_path / f"{name}.jsonl"), "--summary", str(summary)]) == 0  # fmt: skip
        rows[name] = [json.loads(line)["detections"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert json.loads(summary.read_text())["end_to_end"] == (name == "e2e")
    assert rows["e2e"] == rows["host"] and any(rows["host"])
    assert capsys.readouterr().out.count("host per frame") == 2
