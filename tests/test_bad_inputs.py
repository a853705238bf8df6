"""The catalogue of bad inputs and hostile cases, run through every entry point.

Each case makes its tiny bad files in a fresh folder, runs one entry point (``deploy/infer.py``,
``check-qdq``, ``deploy.engine.build``, ``deploy.entrypoint``, ``toolchain``, ``benchmarks.run``)
in that folder, and asserts what issue 13 asks of every user mistake:

- no traceback;
- the exit status (non-zero for a mistake; 0 for a hostile input that must simply work);
- the message names the file, key or flag, on one line (one ``error:`` line);
- no partial output: no file appears in the case's folder except those the case expects.

Entry points run in-process (``main(argv)``, output captured at the file-descriptor level) except
where process-level behaviour matters: imports, signals, a missing display. Cases whose fix lies
in another part of the project are ``xfail(strict=True)`` with the reason, so they flip to a
failure (a reminder to drop the mark) once fixed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from base.errors import Terminated, ToolchainError, UsageError, report_errors

REPO = Path(__file__).resolve().parents[1]
QUANT_CONFIG = REPO / "configs" / "quant.yaml"
NONZERO = "non-zero"


@dataclass
class Case:
    """One bad input.

    Attributes:
        id: Test id.
        category: The issue's category: outputs, recordings, tracebacks, live-sources, checkpoints.
        entry: infer, check-qdq, engine-build, entrypoint, toolchain or bench.
        args: Arguments; ``{name}`` is an asset path (see ``assets``) and ``{d}`` the case's folder.
        says: Substrings the output must hold, each on one line.
        code: Expected exit status (``NONZERO``: any but 0).
        setup: Writes the bad files into the case's folder.
        env: Environment for the run (formatted like ``args``); ``None`` removes the variable.
        new: Names that may appear in the case's folder (prefix match).
        process: Run as a subprocess.
        report: The output is a report, not an ``error:`` line (check-qdq's verdicts).
        xfail: Why it still fails (another helper's work), or ``None``.
        slow: Takes more than a few seconds.
    """

    id: str
    category: str
    entry: str
    args: list[str]
    says: list[str]
    code: int | str = NONZERO
    setup: Callable[[Path, dict], None] | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    new: tuple[str, ...] = ()
    process: bool = False
    report: bool = False
    xfail: str | None = None
    slow: bool = False

    @property
    def needs_checkpoint(self) -> bool:
        return "{checkpoint}" in " ".join(self.args) or getattr(self.setup, "reads_checkpoint", False)


# ---------------------------------------------------------------- tiny files, made in code


def _save_model(path: Path, nodes: list, inits: list, out_shape: list, in_shape=(1, 3, 64, 64)) -> Path:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)], inits,
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _detector(path: Path, classes: int = 2, batch: int = 1) -> Path:
    """A YOLOv8-shaped detector: [batch, 3, 64, 64] -> [batch, 4 + classes, 64], a pooled 1x1 conv."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.uniform(0, 1, (4 + classes, 3, 1, 1)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([batch, 4 + classes, 64], np.int64), "shape")
    nodes = [
        helper.make_node("AveragePool", ["images"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Conv", ["p", "w"], ["c"]),
        helper.make_node("Reshape", ["c", "shape"], ["output0"]),
    ]
    return _save_model(path, nodes, [weight, shape], [batch, 4 + classes, 64], (batch, 3, 64, 64))


def _classifier(path: Path) -> Path:
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["p"]), helper.make_node("Flatten", ["p"], ["output0"])]
    return _save_model(path, nodes, [], [1, 3])


def _sidecar(model: Path, names: list[str]) -> None:
    meta = {"names": names, "imgsz": [64, 64], "stride": 32, "precision": "fp32", "source": "", "quantization": None,
            "extra": {}, "version": 1}  # fmt: skip
    model.with_name(model.name + ".json").write_text(json.dumps(meta))


def _qdq(path: Path) -> Path:
    """One quantized conv: input and weight behind DequantizeLinear, per-channel int8 weights."""
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
        numpy_helper.from_array(np.ones((6, 3, 1, 1), np.int8), "wq"),
        numpy_helper.from_array(np.full(6, 0.1, np.float32), "ws"), numpy_helper.from_array(np.zeros(6, np.int8), "wz"),
    ]  # fmt: skip
    nodes = [
        helper.make_node("QuantizeLinear", ["images", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
        helper.make_node("Conv", ["dq", "w"], ["output0"]),
    ]
    return _save_model(path, nodes, inits, [1, 6, 64, 64])


def _video(path: Path, frames: int = 4) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 30 * i, np.uint8))
    writer.release()
    return path


def _jpeg(seed: int = 0) -> bytes:
    return cv2.imencode(".jpg", np.random.default_rng(seed).integers(0, 255, (48, 64, 3), np.uint8))[1].tobytes()


def _dataset(root: Path, labels: dict[str, str], names: str = "[a, b]") -> Path:
    (root / "images" / "val").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    for i, (stem, text) in enumerate(labels.items()):
        (root / "images" / "val" / f"{stem}.jpg").write_bytes(_jpeg(i))
        (root / "labels" / "val" / f"{stem}.txt").write_text(text)
    (root / "data.yaml").write_text(f"train: images/val\nval: images/val\nnames: {names}\n")
    return root / "data.yaml"


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, str]:
    """Good files the cases point at (never written by a case): a detector and its sidecar, a QDQ
    and a float ONNX, a video, an image and a small dataset."""
    d = tmp_path_factory.mktemp("assets")
    model = _detector(d / "det.onnx")
    _sidecar(model, ["a", "b"])
    _detector(d / "nosidecar.onnx")
    data = _dataset(d / "ds", {"x": "0 0.5 0.5 0.3 0.3\n", "y": "1 0.4 0.4 0.2 0.2\n"})
    cv2.imwrite(str(d / "image.jpg"), np.zeros((48, 64, 3), np.uint8))
    paths = {"model": model, "qdq": _qdq(d / "qdq.onnx"), "video": _video(d / "v.avi"), "image": d / "image.jpg",
             "data": data, "quant": QUANT_CONFIG}  # fmt: skip
    return {k: str(v) for k, v in paths.items()}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A YOLOv8n with four classes as an ultralytics checkpoint (toolchain cases only)."""
    torch = pytest.importorskip("torch")
    from toolchain.models.yolo import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "four.pt"
    torch.save({"model": build_model("yolov8n.yaml", ["a", "b", "c", "d"]), "train_args": {"imgsz": 64}}, path)
    return str(path)


# ---------------------------------------------------------------- setups: the bad files


def _blocker(d: Path, a: dict) -> None:
    """``blk`` is a regular file, so nothing can be created under it (a read-only folder, even for root)."""
    (d / "blk").write_text("a file where a folder is expected")


def _write(name: str, data: bytes | str) -> Callable[[Path, dict], None]:
    def setup(d: Path, a: dict) -> None:
        path = d / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)

    return setup


def _data_yaml(text: str | bytes, labels: dict[str, str] | None = None) -> Callable[[Path, dict], None]:
    def setup(d: Path, a: dict) -> None:
        _dataset(d, labels or {"x": "0 0.5 0.5 0.3 0.3\n"})
        (d / "data.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def _labels(text: bytes) -> Callable[[Path, dict], None]:
    def setup(d: Path, a: dict) -> None:
        _dataset(d, {"x": "0 0.5 0.5 0.3 0.3\n", "y": ""})
        (d / "labels" / "val" / "y.txt").write_bytes(text)

    return setup


def _model_with(builder: Callable[[Path], Path], names: list[str] | None = None) -> Callable[[Path, dict], None]:
    def setup(d: Path, a: dict) -> None:
        model = builder(d / "m.onnx")
        if names is not None:
            _sidecar(model, names)

    return setup


def _many(*setups: Callable[[Path, dict], None]) -> Callable[[Path, dict], None]:
    def setup(d: Path, a: dict) -> None:
        for s in setups:
            s(d, a)

    return setup


def _float_onnx(d: Path, a: dict) -> None:
    _detector(d / "fp32.onnx")


def _cut_onnx(d: Path, a: dict) -> None:
    """The first half of a real ONNX file (a copy cut short by a full disk)."""
    data = Path(a["qdq"]).read_bytes()
    (d / "cut.onnx").write_bytes(data[: len(data) // 2])


def _payload(d: Path, a: dict) -> None:
    """A .pt whose unpickling runs a command: it creates the file ``pwned``."""
    torch = pytest.importorskip("torch")

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {d / 'pwned'}",)

    torch.save({"model": Payload(), "train_args": {"imgsz": 64}}, d / "payload.pt")


def _reads_checkpoint(setup: Callable[[Path, dict], None]) -> Callable[[Path, dict], None]:
    """Mark a setup that reads ``a["checkpoint"]`` (the module fixture is then made)."""
    setup.reads_checkpoint = True
    return setup


@_reads_checkpoint
def _truncated_pt(d: Path, a: dict) -> None:
    (d / "cut.pt").write_bytes(Path(a["checkpoint"]).read_bytes()[:2000])


def _four_class_data(d: Path, a: dict) -> None:
    """``data.yaml`` with the checkpoint's four classes, so model-consuming commands get past the class check."""
    _dataset(d, {"x": "0 0.5 0.5 0.3 0.3\n", "y": "3 0.4 0.4 0.2 0.2\n"}, names="[a, b, c, d]")


def _last_pt(write: Callable[[Path, dict], None]) -> Callable[[Path, dict], None]:
    """A QAT run ``runs/r`` whose ``weights/last.pt`` ``write`` makes, beside four-class data."""

    @_reads_checkpoint
    def setup(d: Path, a: dict) -> None:
        _four_class_data(d, a)
        (d / "runs" / "r" / "weights").mkdir(parents=True)
        write(d / "runs" / "r" / "weights" / "last.pt", a)

    return setup


def _copy_checkpoint(name: str) -> Callable[[Path, dict], None]:
    @_reads_checkpoint
    def setup(d: Path, a: dict) -> None:
        _four_class_data(d, a)
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(Path(a["checkpoint"]).read_bytes())

    return setup


def _our_format(path: Path, edit: Callable[[dict], None]) -> None:
    """A checkpoint in our format (a tiny YOLOv8n with one class) changed by ``edit`` before it is saved."""
    torch = pytest.importorskip("torch")
    from toolchain.models.checkpoint import FORMAT, FORMAT_VERSION, model_record
    from toolchain.models.yolo import build_model

    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model_record(build_model("yolov8n.yaml", ["a"])),
            "train_args": {"imgsz": 64}}  # fmt: skip
    edit(data)
    torch.save(data, path)


def _payload_in_our_format(d: Path, a: dict) -> None:
    """Our format, one of whose tensors is a pickle that runs ``touch pwned``."""

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {d / 'pwned'}",)

    _our_format(d / "best.pt", lambda data: data["model"]["state_dict"].__setitem__("model.0.conv.weight", Payload()))


def _old_format(d: Path, a: dict) -> None:
    """A fake-quant model pickled whole, as this toolchain saved checkpoints before (its classes are code)."""
    torch = pytest.importorskip("torch")
    from toolchain.models.yolo import build_model
    from toolchain.quantization.config import QuantConfig
    from toolchain.quantization.placement import quantize_model

    model = build_model("yolov8n.yaml", ["a", "b"])
    quantize_model(model, QuantConfig())
    torch.save({"model": model, "train_args": {"imgsz": 64}}, d / "old.int8.pt")


def _classifier_pt(d: Path, a: dict) -> None:
    torch = pytest.importorskip("torch")
    from ultralytics.nn.tasks import ClassificationModel

    torch.save({"model": ClassificationModel("yolov8n-cls.yaml", nc=2, verbose=False)}, d / "cls.pt")


def _tensors_only_pt(d: Path, a: dict) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(3)}, d / "w.pt")


def _zip_of_junk(d: Path, a: dict) -> None:
    import zipfile

    with zipfile.ZipFile(d / "junk.pt", "w") as z:
        z.writestr("junk/data.pkl", b"not a pickle")


def _undecodable_train(d: Path, a: dict) -> None:
    """Four-class data whose train split holds only a file named .jpg that is not an image."""
    _four_class_data(d, a)
    (d / "images" / "train").mkdir()
    (d / "images" / "train" / "t.jpg").write_bytes(b"not a jpeg")
    (d / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [a, b, c, d]\n")


def _skip_every_conv(d: Path, a: dict) -> None:
    _four_class_data(d, a)
    (d / "skip.yaml").write_text("overrides:\n  - pattern: '.*'\n    skip: true\n")


def _two_class_data(d: Path, a: dict) -> None:
    _dataset(d, {"x": "0 0.5 0.5 0.3 0.3\n", "y": "1 0.4 0.4 0.2 0.2\n"}, names="[a, b, c]")


def _no_display(d: Path, a: dict) -> None:
    cv2.imwrite(str(d / "a.jpg"), np.zeros((32, 32, 3), np.uint8))


def _named_video(name: str) -> Callable[[Path, dict], None]:
    def setup(d: Path, a: dict) -> None:
        _video(d / name, frames=2)

    return setup


def _bang_folder(d: Path, a: dict) -> None:
    (d / "run!1").mkdir()
    (d / "run!1" / "a.jpg").write_bytes(_jpeg())


INFER = ["--model", "{model}", "--backend", "onnxruntime"]
ON_VIDEO = [*INFER, "--source", "{video}"]
PTQ = ["ptq", "--weights", "{checkpoint}", "--data", "{data}", "--imgsz", "64", "--quant-config", "{quant}"]
PTQ_FOUR = ["ptq", "--weights", "{checkpoint}", "--data", "data.yaml", "--imgsz", "64", "--out", "{d}/m.int8.onnx"]
QAT_RESUME = ["qat", "--weights", "{checkpoint}", "--data", "data.yaml", "--project", "runs", "--name", "r", "--resume",
              "--quant-config", "{quant}"]  # fmt: skip

# ---------------------------------------------------------------- the catalogue

# fmt: off
CASES = [
    # 1. Outputs that lie
    Case("check-qdq-float-model", "outputs", "check-qdq", ["fp32.onnx"], ["[float]", "--allow-float"], 1, _float_onnx,
         report=True),
    Case("check-qdq-no-conv-at-all", "outputs", "check-qdq", ["m.onnx"], ["no quantized conv (0/0"], 1,
         _model_with(_classifier), report=True),
    Case("check-qdq-one-float-among-two", "outputs", "check-qdq", ["{qdq}", "fp32.onnx"], ["fp32.onnx", "[float]"], 1,
         _float_onnx, report=True),
    Case("toolchain-check-qdq-float-model", "outputs", "toolchain", ["check-qdq", "fp32.onnx"], ["[float]"], 1,
         _float_onnx, report=True),
    Case("infer-folder-of-only-broken-images", "outputs", "infer",
         [*INFER, "--source", "imgs", "--json", "{d}/d.jsonl"], ["imgs: none of its 2 image(s) is usable"], 1,
         _many(_write("imgs/a.jpg", b"not a jpeg"), _write("imgs/b.png", b""))),
    Case("infer-sidecar-names-wrong-count", "outputs", "infer",
         ["--model", "m.onnx", "--backend", "onnxruntime", "--source", "{image}"],
         ["m.onnx: the sidecar names 3 classes, the model outputs 2"], 1, _model_with(_detector, ["a", "b", "c"])),
    Case("infer-model-not-a-detector", "outputs", "infer",
         ["--model", "m.onnx", "--backend", "onnxruntime", "--source", "{image}"],
         ["m.onnx: output [1, 3] is not a YOLOv8 detection output"], 1, _model_with(_classifier)),
    Case("infer-static-batch-2", "outputs", "infer",
         ["--model", "m.onnx", "--backend", "onnxruntime", "--source", "{image}"], ["m.onnx: static batch 2"], 1,
         _model_with(lambda p: _detector(p, batch=2))),
    Case("check-data-zero-usable-images", "outputs", "toolchain", ["check-data", "--data", "data.yaml"],
         ["'train' has no usable image: all 1 were skipped", "class id 3 out of range", "lists 2 classes"], 1,
         _data_yaml("train: images/val\nval: images/val\nnames: [a, b]\n", {"x": "3 0.5 0.5 0.3 0.3\n"})),
    Case("eval-zero-usable-images", "outputs", "toolchain",
         ["eval", "--weights", "{model}", "--data", "data.yaml", "--backend", "onnxruntime", "--json", "{d}/m.json"],
         ["'val' has no usable image"], 1,
         _data_yaml("train: images/val\nval: images/val\nnames: [a, b]\n", {"x": "5 0.5 0.5 0.3 0.3\n"})),
    Case("eval-model-classes-differ-from-data", "outputs", "toolchain",
         ["eval", "--weights", "{model}", "--data", "data.yaml", "--backend", "onnxruntime", "--json", "{d}/m.json"],
         ["data.yaml", "3"], 1, _two_class_data),
    Case("ptq-zero-calibration-images", "outputs", "toolchain",
         [*PTQ, "--num-images", "0", "--out", "{d}/m.int8.onnx"], ["--num-images"], NONZERO),
    Case("ptq-train-split-no-decodable-image", "outputs", "toolchain", PTQ_FOUR,
         ["data.yaml: none of the 1 'train' images chosen to calibrate can be decoded"], 1, _undecodable_train),
    Case("ptq-quant-config-skips-every-conv", "outputs", "toolchain", [*PTQ_FOUR, "--quant-config", "skip.yaml"],
         ["quant.overrides: skip every one of the 64 convs"], 1, _skip_every_conv),
    Case("ptq-checkpoint-over-its-weights", "outputs", "toolchain",
         ["ptq", "--weights", "m.int8.pt", "--data", "data.yaml", "--out", "m.int8.onnx"],
         ["m.int8.pt: the same file as the input --weights"], 2, _copy_checkpoint("m.int8.pt")),
    Case("qat-weights-inside-its-run-folder", "outputs", "toolchain",
         ["qat", "--weights", "runs/r/weights/best.pt", "--data", "data.yaml", "--project", "runs", "--name", "r"],
         ["--weights runs/r/weights/best.pt: inside the run folder runs/r"], 2,
         _copy_checkpoint("runs/r/weights/best.pt")),
    Case("ptq-fp16-without-fp32", "outputs", "toolchain", [*PTQ, "--fp16"], ["--fp16: needs fp32"], 2),
    Case("eval-json-over-the-model-sidecar", "outputs", "toolchain",
         ["eval", "--weights", "m.onnx", "--data", "{data}", "--json", "m.onnx.json"],
         ["--json m.onnx.json: the same file as the input sidecar of m.onnx"], 2, _model_with(_detector, ["a", "b"])),
    Case("eval-pt-classes-differ-from-data", "outputs", "toolchain", ["eval", "--weights", "{checkpoint}", "--data",
         "{data}"], ["the model has 4 classes", "has 2 ['a', 'b']"], 1),
    Case("eval-onnx-without-names-other-class-count", "outputs", "toolchain",
         ["eval", "--weights", "m.onnx", "--data", "data.yaml"], ["m.onnx: the model outputs 2 classes", "names 3"], 1,
         _many(_model_with(_detector), _two_class_data)),
    Case("parity-float-onnx", "outputs", "toolchain",
         ["parity", "--model", "{checkpoint}", "--onnx", "fp32.onnx", "--data", "{data}"],
         ["fp32.onnx: no QuantizeLinear node"], 1, _float_onnx),
    Case("parity-float-model", "outputs", "toolchain",
         ["parity", "--model", "{checkpoint}", "--onnx", "{qdq}", "--data", "{data}"],
         ["four.pt: not a fake-quant model"], 1),
    Case("export-out-txt", "outputs", "toolchain", ["export", "--weights", "{checkpoint}", "--out", "m.txt"],
         ["--out m.txt: expected a file name ending in .onnx"], 2),
    Case("check-data-nc-disagrees-with-names", "outputs", "toolchain", ["check-data", "--data", "data.yaml"],
         ["data.yaml: 'nc' is 3 but 'names' lists 2 classes"], 1,
         _data_yaml("train: images/val\nval: images/val\nnc: 3\nnames: [a, b]\n")),
    Case("sensitivity-out-is-a-file", "outputs", "toolchain",
         ["sensitivity", "--weights", "{checkpoint}", "--data", "{data}", "--out", "blk"],
         ["--out blk: blk is a file; expected a folder"], 2, _blocker),
    # 2. Recordings
    Case("save-video-under-a-file", "recordings", "infer", [*ON_VIDEO, "--save", "{d}/blk/out.mp4"],
         ["--save {d}/blk/out.mp4", "{d}/blk is not a folder"], 1, _blocker),
    Case("save-folder-under-a-file", "recordings", "infer", [*ON_VIDEO, "--save", "{d}/blk/frames"],
         ["--save {d}/blk/frames"], 1, _blocker),
    Case("save-into-missing-folder", "recordings", "infer", [*ON_VIDEO, "--save", "missing/x.mp4"],
         ["--save missing/x.mp4: folder missing does not exist"], 1),
    Case("save-unknown-extension", "recordings", "infer", [*ON_VIDEO, "--save", "x.xyz"],
         ["--save x.xyz: unknown extension '.xyz'"], 2),
    Case("save-is-an-existing-file", "recordings", "infer", [*ON_VIDEO, "--save", "blk"], ["--save blk: is a file"], 2,
         _blocker),
    Case("save-over-the-source", "recordings", "infer", [*INFER, "--source", "v.avi", "--save", "v.avi"],
         ["--save v.avi: the same file as the input"], 2, _named_video("v.avi")),
    Case("json-over-the-model", "recordings", "infer", [*ON_VIDEO, "--json", "{model}"], ["the same file as the input"],
         2),
    Case("json-into-missing-folder", "recordings", "infer", [*ON_VIDEO, "--json", "missing/d.jsonl"],
         ["--json missing/d.jsonl: folder missing does not exist"], 1),
    Case("json-under-a-file", "recordings", "infer", [*ON_VIDEO, "--json", "blk/d.jsonl"], ["--json blk/d.jsonl"], 1,
         _blocker),
    Case("json-is-a-folder", "recordings", "infer", [*ON_VIDEO, "--json", "{d}"], ["is a folder"], 1),
    Case("summary-into-missing-folder", "recordings", "infer", [*ON_VIDEO, "--summary", "missing/s.json"],
         ["--summary missing/s.json: folder missing does not exist"], 1),
    Case("summary-under-a-file", "recordings", "infer", [*ON_VIDEO, "--summary", "blk/s.json", "--save", "out.mp4"],
         ["--summary blk/s.json"], 1, _blocker),
    Case("json-and-summary-same-file", "recordings", "infer", [*ON_VIDEO, "--json", "o.json", "--summary", "o.json"],
         ["--summary o.json: the same file as --json"], 2),
    Case("show-without-display", "recordings", "infer", [*INFER, "--source", "a.jpg", "--show"], ["--show: no display"],
         2, _no_display, env={"DISPLAY": None, "WAYLAND_DISPLAY": None}, process=True),
    Case("save-mov-works", "recordings", "infer", [*ON_VIDEO, "--save", "x.mov"], [], 0, new=("x.mov")),
    Case("check-qdq-json-under-a-file", "recordings", "check-qdq", ["{qdq}", "--json", "blk/r.json"],
         ["--json blk/r.json"], 1, _blocker),
    Case("check-qdq-json-is-a-folder", "recordings", "check-qdq", ["{qdq}", "--json", "{d}"], ["is a folder"], 1),
    Case("eval-json-under-a-file", "recordings", "toolchain",
         ["eval", "--weights", "{model}", "--data", "{data}", "--backend", "onnxruntime", "--json", "blk/m.json"],
         ["--json blk/m.json: cannot write"], 2, _blocker),
    Case("export-out-under-a-file", "recordings", "toolchain",
         ["export", "--weights", "{checkpoint}", "--out", "blk/m.onnx", "--imgsz", "64"], ["--out blk/m.onnx"], 2,
         _blocker),
    Case("ptq-out-under-a-file", "recordings", "toolchain", [*PTQ, "--out", "blk/m.int8.onnx"],
         ["--out blk/m.int8.onnx: cannot write"], 2, _blocker),
    Case("qat-project-under-a-file", "recordings", "toolchain",
         ["qat", "--weights", "{checkpoint}", "--data", "{data}", "--project", "blk/runs"],
         ["--project blk/runs: cannot write"], 2, _blocker),
    Case("sensitivity-out-under-a-file", "recordings", "toolchain",
         ["sensitivity", "--weights", "{checkpoint}", "--data", "{data}", "--out", "blk/s"],
         ["--out blk/s: cannot write"], 2, _blocker),
    Case("entrypoint-engine-dir-under-a-file", "recordings", "entrypoint", [], ["ENGINE_DIR={d}/blk/engines"], 1,
         _blocker, env={"MODEL": "{model}", "ENGINE_DIR": "{d}/blk/engines", "BACKEND": "onnxruntime"}),
    Case("entrypoint-engine-dir-is-a-file", "recordings", "entrypoint", [], ["ENGINE_DIR={d}/blk"], 1, _blocker,
         env={"MODEL": "{model}", "ENGINE_DIR": "{d}/blk", "BACKEND": "onnxruntime"}),
    # 3. Tracebacks for user mistakes
    Case("names-mixed-key-types", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["data.yaml: 'names' keys must be integer class ids, got '1'"], 1,
         _data_yaml('train: images/val\nval: images/val\nnames: {0: a, "1": b}\n')),
    Case("names-with-a-gap", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["'names' keys must be 0..1 without gaps"], 1,
         _data_yaml("train: images/val\nval: images/val\nnames: {0: a, 2: b}\n")),
    Case("names-nested-list", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"], ["'names' holds ['b']"],
         1, _data_yaml("train: images/val\nval: images/val\nnames: [a, [b]]\n")),
    Case("path-is-a-number", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["data.yaml: 'path' must be a folder path (a string), got 123"], 1,
         _data_yaml("path: 123\ntrain: images/val\nval: images/val\nnames: [a]\n")),
    Case("split-points-at-a-jpg", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["'val' points to the file", "x.jpg; expected a folder of images or a .txt"], 1,
         _data_yaml("train: images/val\nval: images/val/x.jpg\nnames: [a]\n")),
    Case("split-is-a-number", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["'val' must be a folder or a .txt list", "got 7"], 1, _data_yaml("train: images/val\nval: 7\nnames: [a]\n")),
    Case("data-yaml-not-utf8", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["data.yaml: data.yaml is not UTF-8 text"], 1,
         _data_yaml("train: images/val\nval: images/val\nnames: [stra\xdfe]\n".encode("latin-1"))),
    Case("data-yaml-is-a-list", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["data.yaml: expected a mapping"], 1, _data_yaml("- train\n- val\n")),
    Case("data-yaml-invalid-yaml", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["data.yaml:2:4: not valid YAML"], 1, _data_yaml("train: [images/val\nval: images/val\n")),
    Case("data-yaml-empty", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["data.yaml: expected a mapping"], 1, _data_yaml("")),
    Case("data-yaml-missing-names", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["missing key 'names'"], 1, _data_yaml("train: images/val\nval: images/val\n")),
    Case("data-yaml-is-a-folder", "tracebacks", "toolchain", ["check-data", "--data", "{d}"], ["{d}"],
         NONZERO),
    Case("image-list-not-utf8", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml"],
         ["val.txt: image list is not UTF-8"], 1,
         _many(_data_yaml("train: images/val\nval: val.txt\nnames: [a]\n"), _write("val.txt", b"x.jpg\n\xff\n"))),
    Case("label-file-not-utf8", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml", "--strict"],
         ["y.txt: label file is not UTF-8"], 1, _labels(b"0 0.5 0.5 0.1 0.1\xff\n")),
    Case("label-class-nan", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml", "--strict"],
         ["y.txt:1: non-finite number"], 1, _labels(b"nan 0.5 0.5 0.1 0.1\n")),
    Case("label-class-inf", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml", "--strict"],
         ["y.txt:1: non-finite number"], 1, _labels(b"inf 0.5 0.5 0.1 0.1\n")),
    Case("label-coordinate-nan", "tracebacks", "toolchain", ["check-data", "--data", "data.yaml", "--strict"],
         ["y.txt:1: non-finite number"], 1, _labels(b"0 nan 0.5 0.1 0.1\n")),
    Case("split-that-does-not-exist", "tracebacks", "toolchain", ["check-data", "--data", "{data}", "--split", "test"],
         ["no 'test' split"], 1),
    Case("check-qdq-truncated-onnx", "tracebacks", "check-qdq", ["cut.onnx"], ["cut.onnx: not a readable ONNX"], 1,
         _cut_onnx),
    Case("check-qdq-empty-graph", "tracebacks", "check-qdq", ["empty.onnx"], ["empty.onnx: no graph nodes"], 1,
         _write("empty.onnx", b"\x08\x07\x12\x04trun")),
    Case("check-qdq-missing-file", "tracebacks", "check-qdq", ["none.onnx"], ["none.onnx: ONNX file not found"], 1),
    Case("check-qdq-text-file", "tracebacks", "check-qdq", ["notes.onnx"], ["notes.onnx: not a readable ONNX"], 1,
         _write("notes.onnx", "just some notes\n")),
    Case("engine-build-missing-onnx", "tracebacks", "engine-build", ["none.onnx"], ["none.onnx"], 1),
    Case("engine-build-truncated-onnx", "tracebacks", "engine-build", ["cut.onnx"], ["cut.onnx"], 1, _cut_onnx),
    Case("entrypoint-backend-auto-works", "tracebacks", "entrypoint", [], [], 0, new=("engines"),
         env={"MODEL": "{model}", "ENGINE_DIR": "{d}/engines", "BACKEND": "auto", "SOURCE": "{video}"}),
    Case("entrypoint-backend-onnxruntime-cuda", "tracebacks", "entrypoint", [], ["CUDAExecutionProvider"], 1,
         new=("engines"),
         env={"MODEL": "{model}", "ENGINE_DIR": "{d}/engines", "BACKEND": "onnxruntime-cuda", "SOURCE": "{video}"}),
    Case("entrypoint-backend-unknown", "tracebacks", "entrypoint", [], ["BACKEND=tensorflow: unknown backend"], 2,
         env={"MODEL": "{model}", "ENGINE_DIR": "{d}/engines", "BACKEND": "tensorflow"}),
    Case("entrypoint-model-missing", "tracebacks", "entrypoint", [], ["none.onnx: model not found"], 1,
         env={"MODEL": "none.onnx", "ENGINE_DIR": "{d}/engines", "BACKEND": "onnxruntime"}),
    Case("entrypoint-as-a-process-auto", "tracebacks", "entrypoint", [], ["none.onnx: model not found"], 1,
         env={"MODEL": "none.onnx", "ENGINE_DIR": "{d}/engines", "BACKEND": "auto"}, process=True),
    Case("infer-model-missing", "tracebacks", "infer", ["--model", "none.onnx", "--source", "{image}"],
         ["none.onnx: model not found"], 1),
    Case("infer-model-text-file", "tracebacks", "infer", ["--model", "notes.txt", "--source", "{image}"],
         ["notes.txt: unsupported model file"], 1, _write("notes.txt", "x")),
    Case("infer-model-garbage-onnx", "tracebacks", "infer",
         ["--model", "bad.onnx", "--backend", "onnxruntime", "--source", "{image}"],
         ["bad.onnx: ONNX Runtime cannot load it"], 1, _write("bad.onnx", b"\x00garbage")),
    Case("infer-sidecar-not-json", "tracebacks", "infer", ["--model", "m.onnx", "--source", "{image}"],
         ["m.onnx.json: not a valid model sidecar"], 1, _many(_model_with(_detector), _write("m.onnx.json", "{names"))),
    Case("infer-sidecar-is-a-list", "tracebacks", "infer", ["--model", "m.onnx", "--source", "{image}"],
         ["m.onnx.json: not a valid model sidecar"], 1, _many(_model_with(_detector), _write("m.onnx.json", "[1, 2]"))),
    Case("infer-sidecar-not-utf8", "tracebacks", "infer", ["--model", "m.onnx", "--source", "{image}"], ["m.onnx.json"],
         1, _many(_model_with(_detector), _write("m.onnx.json", b'{"names": ["\xff"]}'))),
    Case("infer-tensorrt-on-onnx", "tracebacks", "infer",
         ["--model", "{model}", "--backend", "tensorrt", "--source", "{image}"], ["build an engine first"], 1),
    Case("infer-engine-with-openvino", "tracebacks", "infer",
         ["--model", "m.engine", "--backend", "openvino", "--source", "{image}"], ["runs only with --backend tensorrt"],
         1, _write("m.engine", b"x")),
    Case("infer-conf-out-of-range", "tracebacks", "infer", [*ON_VIDEO, "--conf", "2"], ["--conf"], 2),
    Case("infer-unknown-backend", "tracebacks", "infer", [*ON_VIDEO, "--backend", "tensorflow"], ["--backend"], 2),
    Case("infer-no-arguments", "tracebacks", "infer", [], ["--model"], 2, process=True),
    Case("check-qdq-no-arguments", "tracebacks", "check-qdq", [], ["onnx"], 2, process=True),
    Case("engine-build-no-arguments", "tracebacks", "engine-build", [], ["onnx"], 2, process=True),
    Case("toolchain-no-arguments", "tracebacks", "toolchain", [], ["command"], 2, process=True),
    Case("bench-no-arguments", "tracebacks", "bench", [], ["--run"], 2, process=True),
    Case("bench-run-folder-missing", "tracebacks", "bench", ["--run", "none", "--data", "{data}"],
         ["none: no QAT run here"], 1),
    Case("bench-compare-missing-reports", "tracebacks", "bench", ["compare", "a.json", "b.json"], ["a.json"], 1),
    Case("eval-weights-missing", "tracebacks", "toolchain", ["eval", "--weights", "none.onnx", "--data", "{data}"],
         ["none.onnx"], NONZERO),
    Case("eval-data-missing", "tracebacks", "toolchain", ["eval", "--weights", "{model}", "--data", "none.yaml"],
         ["none.yaml"], NONZERO),
    Case("weights-is-a-folder", "tracebacks", "toolchain", ["export", "--weights", "w.pt"], ["--weights w.pt"], 2,
         lambda d, a: (d / "w.pt").mkdir()),
    Case("qat-weights-is-an-onnx", "tracebacks", "toolchain",
         ["qat", "--weights", "{model}", "--data", "{data}", "--project", "runs"],
         ["det.onnx: expected a PyTorch checkpoint (.pt), got '.onnx'"], 1),
    Case("eval-onnx-renamed-pt", "tracebacks", "toolchain", ["eval", "--weights", "m.pt", "--data", "{data}"],
         ["m.pt: not a readable PyTorch checkpoint"], 1, lambda d, a: (d / "m.pt").write_bytes(Path(a["qdq"]).read_bytes())),
    Case("eval-empty-pt", "tracebacks", "toolchain", ["eval", "--weights", "e.pt", "--data", "{data}"],
         ["e.pt: not a readable PyTorch checkpoint"], 1, _write("e.pt", b"")),
    # 4. Live sources
    Case("camera-index-absent", "live-sources", "infer", [*INFER, "--source", "9"], ["camera 9"], 1),
    Case("engine-missing-without-source", "live-sources", "infer", ["--engine", "model.int8.engine"],
         ["model.int8.engine: engine not found; build it with 'make engine'"], 1),
    Case("source-missing-file", "live-sources", "infer", [*INFER, "--source", "none.mp4"],
         ["none.mp4: source not found"], 1),
    Case("source-empty-folder", "live-sources", "infer", [*INFER, "--source", "empty"], ["empty: no images"], 1,
         lambda d, a: (d / "empty").mkdir()),
    Case("source-zero-byte-video", "live-sources", "infer", [*INFER, "--source", "z.mp4"], ["z.mp4"], 1,
         _write("z.mp4", b"")),
    Case("source-text-named-mp4", "live-sources", "infer", [*INFER, "--source", "t.mp4"], ["t.mp4"], 1,
         _write("t.mp4", "not a video\n" * 10)),
    Case("source-truncated-jpeg", "live-sources", "infer", [*INFER, "--source", "cut.jpg"],
         ["cut.jpg: none of its 1 image(s) is usable", "truncated JPEG"], 1, _write("cut.jpg", _jpeg()[:900])),
    Case("source-gstreamer-pipeline-unavailable", "live-sources", "infer",
         [*INFER, "--source", "videotestsrc num-buffers=1 ! appsink"], ["videotestsrc num-buffers=1 ! appsink"], 1),
    Case("source-file-with-bang-works", "live-sources", "infer", [*INFER, "--source", "clip!.avi"], [], 0,
         _named_video("clip!.avi")),
    Case("source-file-with-spaced-bang-works", "live-sources", "infer", [*INFER, "--source", "a ! b.avi"], [], 0,
         _named_video("a ! b.avi")),
    Case("source-file-with-shell-chars-works", "live-sources", "infer", [*INFER, "--source", "x;$(touch pwned).avi"],
         [], 0, _named_video("x;$(touch pwned).avi")),
    Case("source-folder-with-bang-works", "live-sources", "infer", [*INFER, "--source", "run!1"], [], 0, _bang_folder),
    Case("source-unicode-name-works", "live-sources", "infer", [*INFER, "--source", "ünï code.jpg"], [], 0,
         _write("ünï code.jpg", _jpeg())),
    Case("entrypoint-camera-absent", "live-sources", "entrypoint", [], ["camera 7"], 1, new=("engines"),
         env={"MODEL": "{model}", "ENGINE_DIR": "{d}/engines", "BACKEND": "onnxruntime", "SOURCE": "7"}),
    # 5. Checkpoints
    Case("eval-payload-checkpoint-does-not-run", "checkpoints", "toolchain",
         ["eval", "--weights", "payload.pt", "--data", "{data}"], ["payload.pt: not loaded: it refers to posix.system"],
         1, _payload),
    Case("export-payload-checkpoint-does-not-run", "checkpoints", "toolchain",
         ["export", "--weights", "payload.pt", "--out", "m.onnx"], ["payload.pt"], 1, _payload),
    Case("eval-truncated-checkpoint", "checkpoints", "toolchain", ["eval", "--weights", "cut.pt", "--data", "{data}"],
         ["cut.pt: not a readable PyTorch checkpoint"], 1, _truncated_pt),
    Case("eval-text-file-as-checkpoint", "checkpoints", "toolchain",
         ["eval", "--weights", "notes.pt", "--data", "{data}"], ["notes.pt: not a readable PyTorch checkpoint"], 1,
         _write("notes.pt", "hello\n")),
    Case("qat-resume-corrupt-last", "checkpoints", "toolchain", QAT_RESUME,
         ["last.pt: not a readable PyTorch checkpoint"], 1,
         _last_pt(lambda p, a: p.write_bytes(b"PK\x03\x04 not really a checkpoint")), new=("runs")),
    Case("qat-resume-payload-last", "checkpoints", "toolchain", QAT_RESUME,
         ["last.pt: not a checkpoint written by this toolchain"], 1,
         _last_pt(lambda p, a: _payload(p.parent, a) or (p.parent / "payload.pt").rename(p)), new=("runs/r/qat.yaml",)),
    Case("qat-resume-last-is-an-ultralytics-pt", "checkpoints", "toolchain", QAT_RESUME,
         ["last.pt: not a checkpoint written by this toolchain"], 1,
         _last_pt(lambda p, a: p.write_bytes(Path(a["checkpoint"]).read_bytes())), new=("runs")),
    Case("eval-payload-in-our-format-does-not-run", "checkpoints", "toolchain",
         ["eval", "--weights", "best.pt", "--data", "{data}"], ["best.pt", "posix.system"], 1, _payload_in_our_format),
    Case("eval-old-pickled-format", "checkpoints", "toolchain", ["eval", "--weights", "old.int8.pt", "--data", "{data}"],
         ["old.int8.pt: a checkpoint in the old pickled format", "again"], 1, _old_format),
    Case("eval-tensors-that-do-not-fit", "checkpoints", "toolchain", ["eval", "--weights", "t.pt", "--data", "{data}"],
         ["t.pt: 'model': its tensors do not fit its architecture"], 1,
         lambda d, a: _our_format(d / "t.pt", lambda data: data["model"]["state_dict"].pop("model.0.conv.weight"))),
    Case("eval-newer-checkpoint-format", "checkpoints", "toolchain", ["eval", "--weights", "n.pt", "--data", "{data}"],
         ["n.pt: checkpoint format version 2"], 1,
         lambda d, a: _our_format(d / "n.pt", lambda data: data.__setitem__("format_version", 2))),
    Case("export-classification-checkpoint", "checkpoints", "toolchain", ["export", "--weights", "cls.pt"],
         ["cls.pt: expected a YOLO detection model, got ClassificationModel"], 1, _classifier_pt),
    Case("eval-tensors-only-pt", "checkpoints", "toolchain", ["eval", "--weights", "w.pt", "--data", "{data}"],
         ["w.pt: holds no model"], 1, _tensors_only_pt),
    Case("eval-zip-of-junk-pt", "checkpoints", "toolchain", ["eval", "--weights", "junk.pt", "--data", "{data}"],
         ["junk.pt: not a readable PyTorch checkpoint"], 1, _zip_of_junk),
    Case("infer-refuses-a-pt", "checkpoints", "infer", ["--model", "m.pt", "--source", "{image}"],
         ["m.pt: unsupported model file; expected .onnx"], 1, _write("m.pt", b"x")),
    Case("check-qdq-refuses-a-pt", "checkpoints", "check-qdq", ["m.pt"], ["m.pt: not a readable ONNX"], 1,
         _write("m.pt", b"\x80\x04K\x01.")),
]
# fmt: on


# ---------------------------------------------------------------- running a case

MODULES = {"infer": "deploy.live.app", "check-qdq": "deploy.qdq_check", "engine-build": "deploy.engine.build", "entrypoint": "deploy.entrypoint",
           "toolchain": "toolchain.cli", "bench": "benchmarks.run"}  # fmt: skip


def _main(entry: str) -> Callable[[list[str]], int]:
    import importlib

    return importlib.import_module(MODULES[entry]).main


def _command(entry: str) -> list[str]:
    if entry == "infer":
        return [sys.executable, str(REPO / "deploy" / "infer.py")]
    return [sys.executable, "-m", MODULES[entry]]


def _files(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*")}


def _run(case: Case, argv: list[str], env: dict[str, str | None], d: Path, monkeypatch, capfd) -> tuple[int, str]:
    """Run the case's entry point in ``d``; returns the exit status and stdout + stderr."""
    monkeypatch.chdir(d)
    if case.process:
        full = {**os.environ, "PYTHONPATH": str(REPO), "YOLO_OFFLINE": "1"}
        full = {k: v for k, v in {**full, **env}.items() if v is not None}
        done = subprocess.run([*_command(case.entry), *argv], cwd=d, env=full, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        return done.returncode, done.stdout + done.stderr
    for key, value in env.items():
        monkeypatch.delenv(key, raising=False) if value is None else monkeypatch.setenv(key, value)
    main = _main(case.entry)
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    except Exception:  # anything else reaching the user is a traceback
        import traceback

        return -1, capfd.readouterr().out + "Traceback (in-process)\n" + traceback.format_exc()
    captured = capfd.readouterr()
    return code, captured.out + captured.err


def _param(case: Case):
    marks = [pytest.mark.slow] if case.slow else []
    if case.xfail:
        marks.append(pytest.mark.xfail(strict=True, reason=case.xfail, raises=AssertionError))
    return pytest.param(case, id=f"{case.category}:{case.entry}:{case.id}", marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case: Case, assets, tmp_path, monkeypatch, capfd, request):
    values = dict(assets)
    if case.needs_checkpoint:
        values["checkpoint"] = request.getfixturevalue("checkpoint")
    d = tmp_path / "case"
    d.mkdir()
    values["d"] = str(d)
    if case.setup:
        case.setup(d, values)
    before = _files(d)
    argv = [a.format(**values) for a in case.args]
    env = {k: v.format(**values) if v is not None else None for k, v in case.env.items()}
    code, output = _run(case, argv, env, d, monkeypatch, capfd)
    assert "Traceback" not in output, output[-3000:]
    if case.code == NONZERO:
        assert code not in (0, None), output[-3000:]
    else:
        assert code == case.code, output[-3000:]
    lines = output.splitlines()
    for text in (t.format(**values) for t in case.says):
        assert any(text in line for line in lines), f"{text!r} not on one line of:\n{output[-3000:]}"
    if code != 0 and not case.report:
        errors = [line for line in lines if "error:" in line]
        assert len(errors) == 1, f"expected one error line, got {len(errors)}:\n{output[-3000:]}"
        assert output.rstrip().splitlines()[-1] == errors[0], f"lines after the error line:\n{output[-3000:]}"
    new = sorted(p for p in _files(d) - before if not (case.new and p.startswith(case.new)))
    assert not new, f"left behind: {new}"


def test_the_catalogue_covers_every_category_and_entry_point():
    categories = {c.category for c in CASES}
    assert categories == {"outputs", "recordings", "tracebacks", "live-sources", "checkpoints"}
    assert {c.entry for c in CASES} == {"infer", "check-qdq", "engine-build", "entrypoint", "toolchain", "bench"}
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)


def _raise(exc: BaseException):
    def run() -> None:
        raise exc

    return run


@pytest.mark.parametrize(
    ("run", "code", "line"),
    [
        (lambda: 0, 0, None),
        (lambda: 3, 3, None),
        (_raise(ToolchainError("x.yaml: bad")), 1, "error: x.yaml: bad"),
        (_raise(UsageError("--flag: bad")), 2, "error: --flag: bad"),
        (_raise(FileNotFoundError(2, "No such file or directory", "a.json")), 1,
         "error: a.json: No such file or directory"),
        (_raise(KeyboardInterrupt()), 130, "interrupted (Ctrl-C)"),
        (_raise(Terminated()), 143, "terminated (SIGTERM)"),
    ],
)  # fmt: skip
def test_one_error_path_and_its_exit_statuses(capsys, run, code, line):
    assert report_errors(run) == code
    err = capsys.readouterr().err
    assert err.strip() == (line or "")


def test_sigterm_runs_every_finally_and_exits_143(tmp_path, capsys):
    import signal

    from base.fileio import atomic_path

    def run() -> None:
        with atomic_path(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)  # docker stop, mid-write
            tmp.write_bytes(b"never")

    assert report_errors(run) == 143
    assert list(tmp_path.iterdir()) == []  # the temporary file was removed, no output under the final name
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is restored
