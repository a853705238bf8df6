"""Hostile inputs by class, each class a generator of cases run over every entry point it concerns.

Kept apart from the case catalogue (``tests/test_bad_inputs.py``): there one case is one file; here
one class is a factory (tmp-path factories for files, links, devices, FIFOs and sockets; hypothesis
for values) crossed with the entry points. Every run asserts, besides its own verdict:

- no traceback, and a refusal is one ``error:`` line;
- no file changed that is not an output of the command: every input is hashed before and after.

Classes: outputs that destroy (an output that is an input, a link to one, a device, a FIFO, a
socket, a folder); broken models that look like empty scenes (Q/DQ scales zero, negative, NaN,
infinite; TensorRT's zero point); inputs without limits (links to endless streams, FIFOs, alias
bombs, class counts and image sizes memory cannot hold); common mistakes (a ``--device`` the
machine does not have); work that did nothing (a benchmark with no model).
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from tests.test_bad_inputs import _dataset, _detector, _main, _qdq, _sidecar, _video

FUZZ = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The good inputs every case reads: a detector with its sidecar, a QDQ ONNX, a video, a dataset."""
    d = tmp_path_factory.mktemp("hostile")
    model = _detector(d / "det.onnx")
    _sidecar(model, ["a", "b"])
    qdq = _qdq(d / "qdq.onnx")
    _sidecar(qdq, [f"c{i}" for i in range(2)])
    data = _dataset(d / "ds", {"x": "0 0.5 0.5 0.3 0.3\n", "y": "1 0.4 0.4 0.2 0.2\n"})
    return {"model": model, "qdq": qdq, "video": _video(d / "v.avi"), "data": data, "folder": d}


def _digests(folder: Path) -> dict[str, str]:
    """Every regular file under ``folder`` by relative path: its SHA-256 (links are not followed)."""
    out = {}
    for p in folder.rglob("*"):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _call(entry: str, argv: list[str], monkeypatch, capfd, cwd: Path, caplog=None) -> tuple[int, str]:
    """Run an entry point in-process in ``cwd``: its exit status, and what it printed (and logged, with ``caplog``)."""
    monkeypatch.chdir(cwd)
    capfd.readouterr()
    try:
        code = _main(entry)([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    captured = capfd.readouterr()
    return code, captured.out + captured.err + (caplog.text if caplog is not None else "")


def _refused(code: int, text: str, *says: str) -> None:
    assert code not in (0, None), text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("error:") or ": error:" in line]
    assert len(errors) == 1, text[-2000:]
    for s in says:
        assert s in errors[0], (s, errors[0])


# ---------------------------------------------------------------- class 1: outputs that destroy


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _socket(path: Path) -> Path:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return path


# Each makes the output path in the case's folder ``d`` from the writer's input ``src``.
OUTPUT_KINDS: dict[str, Callable[[Path, Path], Path]] = {
    "the-input": lambda d, src: src,
    "link-to-the-input": lambda d, src: _link(d / "out.json", src),
    "the-input-sidecar": lambda d, src: Path(str(src) + ".json"),
    "dev-full": lambda d, src: Path("/dev/full"),
    "link-to-dev-full": lambda d, src: _link(d / "out.json", Path("/dev/full")),
    "fifo": lambda d, src: _fifo(d / "out.json"),
    "socket": lambda d, src: _socket(d / "out.json"),
    "folder": lambda d, src: d,
}


def _link(path: Path, target: Path) -> Path:
    path.symlink_to(target)
    return path


# Each entry point that writes a file: (entry, argv with {out} for the output, the input it reads and
# whether it reads that input's sidecar too).
WRITERS = {
    "infer-json": ("infer", ["--model", "{model}", "--backend", "onnxruntime", "--source", "{video}", "--json", "{out}"],
                   "model", True),  # fmt: skip
    "infer-summary": ("infer", ["--model", "{model}", "--backend", "onnxruntime", "--source", "{video}",
                                "--summary", "{out}"], "model", True),  # fmt: skip
    "eval-json": ("toolchain", ["eval", "--weights", "{model}", "--data", "{data}", "--json", "{out}"], "model", True),
    "check-qdq-json": ("check-qdq", ["{qdq}", "--json", "{out}"], "qdq", False),
    "engine-build-out": ("engine-build", ["{qdq}", "--out", "{out}"], "qdq", True),
}


def _argv(template: list[str], inputs: dict, **more: Path) -> list[str]:
    values = {**{k: str(v) for k, v in inputs.items()}, **{k: str(v) for k, v in more.items()}}
    return [a.format(**values) for a in template]


@pytest.mark.parametrize("kind", list(OUTPUT_KINDS))
@pytest.mark.parametrize("writer", list(WRITERS))
def test_an_output_never_destroys_an_input_or_a_device(writer, kind, inputs, tmp_path, monkeypatch, capfd):
    entry, template, source, reads_sidecar = WRITERS[writer]
    if kind == "the-input-sidecar" and not reads_sidecar:
        pytest.skip(f"{writer} does not read a sidecar: writing over one is allowed")
    out = OUTPUT_KINDS[kind](tmp_path, inputs[source])
    before, mode = _digests(inputs["folder"]), os.lstat(out).st_mode
    target_mode = os.stat(out).st_mode
    code, text = _call(entry, _argv(template, inputs, out=out), monkeypatch, capfd, tmp_path)
    _refused(code, text)
    assert _digests(inputs["folder"]) == before  # no input changed
    assert os.lstat(out).st_mode == mode and os.stat(out).st_mode == target_mode  # a link, device, FIFO stays one
    if stat.S_ISREG(target_mode) or stat.S_ISDIR(target_mode):
        return
    assert not stat.S_ISREG(os.stat(out).st_mode)


def test_a_symlinked_output_is_written_through(inputs, tmp_path, monkeypatch, capfd):
    """A link to a new file: the target is written, the link stays a link (an atomic rename replaced it)."""
    target = tmp_path / "real" / "s.json"
    target.parent.mkdir()
    link = _link(tmp_path / "s.json", target)
    entry, template, _, _ = WRITERS["infer-summary"]
    code, text = _call(entry, _argv(template, inputs, out=link), monkeypatch, capfd, tmp_path)
    assert code == 0, text[-2000:]
    assert link.is_symlink() and target.is_file() and '"frames"' in target.read_text()


def test_json_lines_to_stdout_stream(inputs, tmp_path, monkeypatch, capfd):
    entry, template, _, _ = WRITERS["infer-json"]
    code, text = _call(entry, _argv(template, inputs, out="-"), monkeypatch, capfd, tmp_path)
    assert code == 0 and text.count('"detections"') == 4, text[-2000:]
    assert not (tmp_path / "-").exists()


# ---------------------------------------------------------------- class 2: broken models


def _with_scale(qdq: Path, out: Path, node_index: int, value: float) -> Path:
    """The QDQ model with one Q/DQ node's scale set to ``value`` (0: the activation Q, 2: the weight DQ)."""
    model = onnx.load(str(qdq))
    node = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")][node_index]
    init = next(t for t in model.graph.initializer if t.name == node.input[1])
    array = numpy_helper.to_array(init).copy()
    array[...] = value
    name = f"{init.name}_{node_index}"
    model.graph.initializer.append(numpy_helper.from_array(array.astype(np.float32), name))
    node.input[1] = name
    onnx.save(model, str(out))
    return out


RUNNERS = {
    "infer-onnxruntime": ("infer", ["--model", "{bad}", "--backend", "onnxruntime", "--source", "{video}"]),
    "infer-openvino": ("infer", ["--model", "{bad}", "--backend", "openvino", "--source", "{video}"]),
    "eval-onnxruntime": ("toolchain", ["eval", "--weights", "{bad}", "--data", "{data}"]),
    "eval-openvino": ("toolchain", ["eval", "--weights", "{bad}", "--data", "{data}", "--backend", "openvino"]),
    "engine-build": ("engine-build", ["{bad}", "--out", "{d}/m.engine"]),
}


def _qdq_detector(path: Path) -> Path:
    """A YOLOv8-shaped QDQ detector: [1, 3, 64, 64] -> Q/DQ -> pooled conv (int8 weights) -> [1, 6, 64]."""
    from onnx import helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"), numpy_helper.from_array(np.array(0, np.int8), "z"),
        numpy_helper.from_array(rng.integers(-127, 128, (6, 3, 1, 1)).astype(np.int8), "wq"),
        numpy_helper.from_array(np.full(6, 0.01, np.float32), "ws"), numpy_helper.from_array(np.zeros(6, np.int8), "wz"),
        numpy_helper.from_array(np.array([1, 6, 64], np.int64), "shape"),
    ]  # fmt: skip
    nodes = [
        helper.make_node("AveragePool", ["images"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("QuantizeLinear", ["p", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0),
        helper.make_node("Conv", ["dq", "w"], ["c"]),
        helper.make_node("Reshape", ["c", "shape"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, [1, 6, 64])], inits)  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    _sidecar(path, ["a", "b"])
    return path


@pytest.fixture(scope="module")
def qdq_detector(tmp_path_factory) -> Path:
    return _qdq_detector(tmp_path_factory.mktemp("qdqdet") / "good.int8.onnx")


@pytest.mark.parametrize("runner", list(RUNNERS))
@FUZZ
@given(value=st.sampled_from([0.0, -0.05, float("nan"), float("inf"), -float("inf")]), node=st.sampled_from([0, 2]))
def test_a_broken_scale_is_refused_before_it_runs(runner, value, node, qdq_detector, inputs, tmp_path_factory,
                                                  monkeypatch, capfd):  # fmt: skip
    if "openvino" in runner:
        pytest.importorskip("openvino")
    d = tmp_path_factory.mktemp("scale")
    bad = _with_scale(qdq_detector, d / "bad.int8.onnx", node, value)
    _sidecar(bad, ["a", "b"])
    entry, template = RUNNERS[runner]
    before = _digests(d)
    code, text = _call(entry, _argv(template, inputs, bad=bad, d=d), monkeypatch, capfd, d)
    _refused(code, text, "not finite and > 0", "--allow-invalid-qdq")
    assert _digests(d) == before


def test_allow_invalid_qdq_runs_it_anyway(qdq_detector, inputs, tmp_path, monkeypatch, capfd):
    bad = _with_scale(qdq_detector, tmp_path / "bad.int8.onnx", 0, 0.0)
    _sidecar(bad, ["a", "b"])
    entry, template = RUNNERS["infer-onnxruntime"]
    code, text = _call(entry, [*_argv(template, inputs, bad=bad), "--allow-invalid-qdq"], monkeypatch, capfd, tmp_path)
    assert code == 0 and "frames in" in text, text[-2000:]


def test_the_engine_builder_refuses_a_nonzero_zero_point(qdq_detector, inputs, tmp_path, monkeypatch, capfd):
    """TensorRT takes symmetric int8 only; ONNX Runtime computes a zero point of 3 right, so it runs there."""
    model = onnx.load(str(qdq_detector))
    zero = next(t for t in model.graph.initializer if t.name == "z")
    zero.CopyFrom(numpy_helper.from_array(np.array(3, np.int8), "z"))
    bad = tmp_path / "zp.int8.onnx"
    onnx.save(model, str(bad))
    _sidecar(bad, ["a", "b"])
    code, text = _call("engine-build", [bad, "--out", tmp_path / "m.engine"], monkeypatch, capfd, tmp_path)
    _refused(code, text, "zero point is not 0")
    entry, template = RUNNERS["infer-onnxruntime"]
    code, text = _call(entry, _argv(template, inputs, bad=bad), monkeypatch, capfd, tmp_path)
    assert code == 0, text[-2000:]


# ---------------------------------------------------------------- class 3: inputs without limits


def _endless(kind: str, path: Path) -> Path:
    """A path that reads without end: a link to /dev/zero, or a FIFO nobody writes."""
    return _link(path, Path("/dev/zero")) if kind == "dev-zero" else _fifo(path)


# Each reads one file the case replaces: (entry, argv, the file's place relative to the case's copy of the data).
READERS = {
    "eval-label": ("toolchain", ["eval", "--weights", "{model}", "--data", "{d}/ds/data.yaml"], "ds/labels/val/x.txt"),
    "eval-image": ("toolchain", ["eval", "--weights", "{model}", "--data", "{d}/ds/data.yaml"], "ds/images/val/x.jpg"),
    "eval-data-yaml": ("toolchain", ["eval", "--weights", "{model}", "--data", "{d}/ds/data.yaml"], "ds/data.yaml"),
    "check-data-yaml": ("toolchain", ["check-data", "--data", "{d}/ds/data.yaml"], "ds/data.yaml"),
    "infer-sidecar": ("infer", ["--model", "{d}/m.onnx", "--backend", "onnxruntime", "--source", "{video}"],
                      "m.onnx.json"),  # fmt: skip
    "infer-image": ("infer", ["--model", "{model}", "--backend", "onnxruntime", "--source", "{d}/img.jpg"], "img.jpg"),
}


def _case_copy(inputs: dict, d: Path) -> None:
    """A copy of the dataset and the detector in ``d`` that a case may break."""
    _dataset(d / "ds", {"x": "0 0.5 0.5 0.3 0.3\n", "y": "1 0.4 0.4 0.2 0.2\n"})
    (d / "m.onnx").write_bytes(Path(inputs["model"]).read_bytes())
    _sidecar(d / "m.onnx", ["a", "b"])


@pytest.mark.parametrize("kind", ["dev-zero", "fifo"])
@pytest.mark.parametrize("reader", list(READERS))
def test_an_endless_input_is_refused_not_read(reader, kind, inputs, tmp_path, monkeypatch, capfd, caplog):
    entry, template, place = READERS[reader]
    _case_copy(inputs, tmp_path)
    victim = tmp_path / place
    victim.unlink(missing_ok=True)
    _endless(kind, victim)
    code, text = _call(entry, _argv(template, inputs, d=tmp_path), monkeypatch, capfd, tmp_path, caplog)
    assert "Traceback" not in text, text[-3000:]
    assert victim.name in text and "not a regular file" in text, text[-2000:]
    if reader in ("eval-label", "eval-image"):  # the image is skipped, named in a warning; the other is scored
        assert code == 0 and "(1 images" in text, text[-2000:]
    else:
        _refused(code, text)


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{k}: &{k} [{', '.join(['*' + p] * 10)}]\n" for p, k in zip("abcdefgh", "bcdefghi")
)


@pytest.mark.parametrize("where", ["data.yaml", "config", "quant-config"])
def test_a_yaml_alias_bomb_is_one_line(where, inputs, tmp_path, monkeypatch, capfd, request):
    _case_copy(inputs, tmp_path)
    bomb = ALIAS_BOMB + "names: *i\n"
    if where == "data.yaml":
        (tmp_path / "ds" / "data.yaml").write_text("train: images/val\nval: images/val\n" + bomb)
        argv = ["check-data", "--data", tmp_path / "ds" / "data.yaml"]
    else:
        (tmp_path / "c.yaml").write_text(bomb)
        argv = (["eval", "--weights", inputs["model"], "--data", inputs["data"], "--config", tmp_path / "c.yaml"]
                if where == "config" else ["check-data", "--data", inputs["data"], "--quant-config", tmp_path / "c.yaml"])  # fmt: skip
        if where == "quant-config":
            argv = ["ptq", "--weights", "w.pt", "--data", inputs["data"], "--quant-config", tmp_path / "c.yaml"]
    code, text = _call("toolchain", argv, monkeypatch, capfd, tmp_path)
    _refused(code, text, "aliases expand to over")


@FUZZ
@given(count=st.integers(200_000, 400_000))
def test_a_class_count_memory_cannot_hold_is_one_line(count, inputs, tmp_path_factory, monkeypatch, capfd):
    from base.limits import max_classes

    d = tmp_path_factory.mktemp("names")
    _case_copy(inputs, d)
    count = max(count, max_classes() + 1)
    (d / "ds" / "data.yaml").write_text("train: images/val\nval: images/val\nnames: [" + ", ".join(["n"] * count) + "]\n")
    code, text = _call("toolchain", ["check-data", "--data", d / "ds" / "data.yaml"], monkeypatch, capfd, d)
    _refused(code, text, f"{count} classes", "GiB available")


IMGSZ_TAKERS = {
    "infer": ("infer", ["--model", "{model}", "--backend", "onnxruntime", "--source", "{video}", "--imgsz", "{n}"]),
    "eval": ("toolchain", ["eval", "--weights", "{model}", "--data", "{data}", "--imgsz", "{n}"]),
    "ptq": ("toolchain", ["ptq", "--weights", "w.pt", "--data", "{data}", "--imgsz", "{n}"]),
    "baseline": ("toolchain", ["baseline", "--data", "{data}", "--imgsz", "{n}"]),
}


@pytest.mark.parametrize("taker", list(IMGSZ_TAKERS))
@FUZZ
@given(n=st.integers(1, 1000).map(lambda k: (k * 1000 + 32_000) // 32 * 32))
def test_an_image_size_memory_cannot_hold_is_one_line(taker, n, inputs, tmp_path_factory, monkeypatch, capfd):
    from base.limits import max_image_size

    n = max(n, max_image_size() + 32)
    entry, template = IMGSZ_TAKERS[taker]
    d = tmp_path_factory.mktemp("imgsz")
    (d / "w.pt").write_bytes(b"never read: the config is refused first")
    code, text = _call(entry, _argv(template, inputs, n=n), monkeypatch, capfd, d)
    _refused(code, text, "GiB available")


# ---------------------------------------------------------------- class 4: common mistakes


DEVICE_TAKERS = {
    "eval": ["eval", "--weights", "w.pt", "--data", "{data}"],
    "ptq": ["ptq", "--weights", "w.pt", "--data", "{data}"],
    "sensitivity": ["sensitivity", "--weights", "w.pt", "--data", "{data}"],
    "baseline": ["baseline", "--data", "{data}"],
    "qat": ["qat", "--weights", "w.pt", "--data", "{data}"],
}


@pytest.mark.parametrize("taker", list(DEVICE_TAKERS))
@FUZZ
@given(device=st.one_of(st.integers(0, 15).map(str), st.integers(0, 7).map(lambda i: f"cuda:{i}"), st.just("cuda"),
                        st.just("0,1"), st.sampled_from(["gpu", "cuda:x", "-1"])))  # fmt: skip
def test_a_device_this_machine_lacks_is_one_line(taker, device, inputs, tmp_path_factory, monkeypatch, capfd):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: a device index may exist")
    d = tmp_path_factory.mktemp("device")
    (d / "w.pt").write_bytes(b"never read: the config is refused first")
    code, text = _call("toolchain", [*_argv(DEVICE_TAKERS[taker], inputs), "--device", device], monkeypatch, capfd, d)
    _refused(code, text, "device")
    assert code == 2


# ---------------------------------------------------------------- class 5: work that did nothing


@pytest.mark.parametrize("folder", ["empty", "only-a-float-model-elsewhere"])
def test_a_benchmark_with_nothing_to_measure_fails(folder, inputs, tmp_path, monkeypatch, capfd):
    run = tmp_path / "run"
    run.mkdir()
    if folder != "empty":
        (tmp_path / "fp32.onnx").write_bytes(Path(inputs["model"]).read_bytes())
    code, text = _call("bench", ["--run", run, "--data", inputs["data"], "--out", tmp_path / "out"], monkeypatch,
                       capfd, tmp_path)  # fmt: skip
    _refused(code, text, "nothing to measure", "not found")
    assert not (tmp_path / "out").exists()
