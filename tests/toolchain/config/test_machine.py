from __future__ import annotations

import os

import pytest
import torch

from toolchain.config.field_types import ExistingFile, FieldError, TorchDevice, Writable
from toolchain.config.machine import check_on_machine, device_problem


def test_cpu_is_always_a_device_and_nonsense_is_named():
    assert device_problem("CPU") is None
    assert device_problem("gpu0") == "expected cpu, cuda, cuda:N or GPU ids like 0 or 0,1; got 'gpu0'"


def test_a_gpu_this_machine_lacks_is_named():
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    said = device_problem(f"cuda:{count}")
    assert said is not None and (f"GPU {count} does not exist" in said if count else "torch sees none" in said)
    with pytest.raises(FieldError, match=f"^device: .*{count}"):
        check_on_machine(TorchDevice(), f"cuda:{count}", "device")


def test_an_existing_file_must_be_a_regular_file(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"x")
    check_on_machine(ExistingFile(), str(tmp_path / "m.pt"), "weights")
    with pytest.raises(FieldError, match=r"^weights: .* is a folder, not a regular file$"):
        check_on_machine(ExistingFile(), str(tmp_path), "weights")
    with pytest.raises(FieldError, match=r"^weights: file not found: .*nope\.pt$"):
        check_on_machine(ExistingFile(), str(tmp_path / "nope.pt"), "weights")


def test_a_written_path_needs_its_suffix_and_a_writable_folder(tmp_path):
    onnx = Writable((".onnx",))
    check_on_machine(onnx, str(tmp_path / "new" / "deeper" / "m.onnx"), "out")  # made when written
    with pytest.raises(FieldError, match=r"^out: expected a file name ending in \.onnx, got '.*m\.pt'$"):
        check_on_machine(onnx, str(tmp_path / "m.pt"), "out")
    (tmp_path / "file").write_text("")
    with pytest.raises(FieldError, match=r"^out: cannot write .*: .*file is a file, not a folder$"):
        check_on_machine(onnx, str(tmp_path / "file" / "m.onnx"), "out")
    with pytest.raises(FieldError, match=r"^out: .*file is a file; expected a folder$"):
        check_on_machine(Writable(), str(tmp_path / "file"), "out")


def test_a_fifo_is_never_taken_for_a_file(tmp_path):
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    with pytest.raises(FieldError, match=r"not a regular file"):
        check_on_machine(ExistingFile(), str(fifo), "weights")
    with pytest.raises(FieldError, match=r"not a regular file; expected a file path$"):
        check_on_machine(Writable((".onnx",)), str(fifo), "out")
