"""Our checkpoints: tensors and plain data read with weights_only, the model rebuilt from code, so that
nothing in a .pt runs; every unreadable .pt is one line naming the file; writes are atomic."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from base.errors import ToolchainError
from toolchain.models.checkpoint import FORMAT, MODEL_RECORD, load_checkpoint, model_record, save_checkpoint
from toolchain.models.names import class_names
from toolchain.models.yolo import build_model, load_model, trained_imgsz
from toolchain.quantization.calibration import calibrate
from toolchain.quantization.config import QuantConfig, QuantizerConfig
from toolchain.quantization.placement import quantize_model
from toolchain.quantization.quantized_model import quantizers

QUANT = QuantConfig(input=QuantizerConfig(calibrator="max"),
                    weight=QuantizerConfig(axis=0, calibrator="max", learn_amax=True))  # fmt: skip


@pytest.fixture(scope="module")
def quantized() -> torch.nn.Module:
    """A calibrated fake-quant YOLOv8n (3 classes) with one quantizer disabled and one range frozen."""
    torch.manual_seed(0)
    model = build_model("yolov8n.yaml", ["a", "b", "c"])
    quantize_model(model, QUANT)
    calibrate(model, [np.random.default_rng(0).random((2, 3, 64, 64), np.float32)])
    qs = quantizers(model)
    qs[3].enabled = False
    qs[5].freeze()
    return model.eval()


@pytest.fixture(scope="module")
def saved(quantized, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "q.pt"
    save_checkpoint(path, quantized, 64, {"version": 1, "x": (1, 2)}, epoch=np.int64(3), fitness=np.float64(0.5))
    return str(path)


def _sharing(model: torch.nn.Module) -> list[list[str]]:
    """Module paths grouped by the object they hold, for every quantizer."""
    groups: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if "quantizer" in name:
            groups.setdefault(id(module), []).append(name)
    return sorted(groups.values())


def test_a_fake_quant_model_comes_back_whole(quantized, saved):
    loaded = load_checkpoint(saved)
    model = loaded["model"]
    assert loaded["epoch"] == 3 and loaded["fitness"] == 0.5 and loaded["config"] == {"version": 1, "x": (1, 2)}
    assert list(model.state_dict()) == list(quantized.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), quantized.state_dict().values()))
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in quantized.named_parameters()]  # optimizer order
    assert _sharing(model) == _sharing(quantized) and len(_sharing(model)) < sum(map(len, _sharing(model)))
    assert [(q.enabled, q.learned_amax is None) for q in quantizers(model)] == [
        (q.enabled, q.learned_amax is None) for q in quantizers(quantized)
    ]
    assert type(model.model[2].m[0]).__name__ == "QuantBottleneck" and class_names(model) == ["a", "b", "c"]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)[0], quantized(x)[0])
    assert trained_imgsz(load_model(saved)) == 64


def test_our_checkpoint_loads_with_weights_only_in_a_fresh_process(saved):
    code = f"import torch; print(sorted(torch.load({saved!r}, weights_only=True)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "'format'" in done.stdout and "'model'" in done.stdout


class _Payload:
    """Unpickling it runs a shell command that creates ``marker``."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _our_format_with_payload(path, marker) -> None:
    record = model_record(build_model("yolov8n.yaml", ["a"]))
    record["state_dict"]["model.0.conv.weight"] = _Payload(marker)
    torch.save({"format": FORMAT, "format_version": 1, "model": record, "train_args": {"imgsz": 64}}, path)


def test_a_payload_in_our_format_cannot_run(tmp_path, capsys):
    path, marker = tmp_path / "best.pt", tmp_path / "pwned"
    _our_format_with_payload(path, marker)
    with pytest.raises(ToolchainError) as info:
        load_model(path)
    assert not marker.exists()
    assert str(path) in str(info.value) and "\n" not in str(info.value) and "posix.system" in str(info.value)
    with pytest.raises(ToolchainError, match="not a checkpoint written by this toolchain"):
        load_checkpoint(path)  # --resume never hands a foreign pickle to anyone
    assert not marker.exists()
    # the payload is live: a full unpickling (what loading did before) runs it
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert marker.exists()


def test_a_payload_in_an_ultralytics_pt_is_refused_after_the_warning(tmp_path, capsys):
    path, marker = tmp_path / "user.pt", tmp_path / "pwned"
    torch.save({"model": _Payload(marker), "train_args": {"imgsz": 64}}, path)
    with pytest.raises(ToolchainError, match=r"user\.pt: not loaded: it refers to posix\.system"):
        load_model(path)
    assert not marker.exists()
    assert capsys.readouterr().err.count("a .pt is a program: load only files you trust") == 1


def test_an_ultralytics_checkpoint_loads_after_one_warning(tiny_checkpoint, capsys):
    model = load_model(tiny_checkpoint)
    assert type(model).__name__ == "DetectionModel" and not model.training and trained_imgsz(model) == 64
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and f"{tiny_checkpoint}: a .pt is a program" in err


def test_old_pickled_checkpoints_are_refused_with_the_fix(quantized, tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"model": quantized, "train_args": {"imgsz": 64}, "epoch": 0}, path)  # the format before this one
    for load in (load_model, load_checkpoint):
        with pytest.raises(ToolchainError, match=r"last\.pt: a checkpoint in the old pickled format .* again"):
            load(path)


def _zip_of_junk(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("junk/data.txt", "not a checkpoint")


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p, good: p.write_bytes(open(good, "rb").read()[:3000]), "not a readable PyTorch checkpoint"),
        (lambda p, good: p.write_text("hello\n"), "not a readable PyTorch checkpoint"),
        (lambda p, good: p.write_bytes(b""), "not a readable PyTorch checkpoint"),
        (lambda p, good: _zip_of_junk(p), "not a readable PyTorch checkpoint"),
        (lambda p, good: torch.save({"w": torch.zeros(2)}, p), "holds no model"),
        (lambda p, good: p.mkdir(), "is a folder"),
    ],
    ids=["truncated", "text", "empty", "zip-of-junk", "tensors-only", "folder"],
)
def test_every_unreadable_pt_is_one_line_naming_it(tmp_path, saved, make, said):
    path = tmp_path / "bad.pt"
    make(path, saved)
    with pytest.raises(ToolchainError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(str(path)) and said in message and "\n" not in message, message


def test_tensors_that_do_not_fit_the_architecture(saved, tmp_path):
    data = torch.load(saved, weights_only=True)
    del data["model"]["state_dict"]["model.0.conv.weight"]
    torch.save(data, tmp_path / "cut.pt")
    with pytest.raises(ToolchainError, match=r"cut\.pt: 'model': its tensors do not fit .*model\.0\.conv\.weight"):
        load_model(tmp_path / "cut.pt")
    data["format_version"] = 99
    torch.save(data, tmp_path / "new.pt")
    with pytest.raises(ToolchainError, match=r"new\.pt: checkpoint format version 99; this toolchain reads version 1"):
        load_model(tmp_path / "new.pt")


def test_a_classification_checkpoint_is_refused(tmp_path):
    from ultralytics.nn.tasks import ClassificationModel

    torch.save({"model": ClassificationModel("yolov8n-cls.yaml", nc=3, verbose=False)}, tmp_path / "cls.pt")
    with pytest.raises(ToolchainError, match=r"cls\.pt: expected a YOLO detection model, got ClassificationModel"):
        load_model(tmp_path / "cls.pt")


def test_save_under_a_file_is_one_line(quantized, tmp_path):
    (tmp_path / "blk").write_text("a file where a folder is expected")
    with pytest.raises(ToolchainError, match=r"blk/w/last\.pt: cannot create its folder"):
        save_checkpoint(tmp_path / "blk" / "w" / "last.pt", quantized, 64)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(quantized, tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    path.write_bytes(b"the previous checkpoint")

    def half_then_full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", half_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, quantized, 64)
    assert path.read_bytes() == b"the previous checkpoint" and sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_a_model_record_is_plain_data(quantized):
    record = model_record(quantized)
    assert record["kind"] == MODEL_RECORD and record["quantization"]["convs"]
    layout = record["quantization"]
    assert {type(v) for q in layout["quantizers"] for v in q["config"].values()} <= {int, float, bool, str, type(None)}
    assert model_record(build_model("yolov8n.yaml", ["a"]))["quantization"] is None
