"""What reports say about the machine, and the faster model named where INT8 runs in float."""

from __future__ import annotations

from deploy.runtime.machine import float_sibling, machine_lines, machine_report


class _Runner:
    def __init__(self, remedy: str, note: str) -> None:
        self.remedy, self._note = remedy, note

    def int8_note(self) -> str:
        return self._note


def test_float_remedy_names_the_fp32_sibling(tmp_path):
    int8, fp32 = tmp_path / "best.int8.onnx", tmp_path / "best.onnx"
    int8.write_bytes(b"x")
    assert float_sibling(int8) is None
    fp32.write_bytes(b"x")
    report = machine_report(_Runner("float", "INT8 self-check failed"), int8)
    assert float_sibling(int8) == fp32 and str(fp32) in report["advice"]
    assert machine_lines(report).splitlines()[1:] == ["INT8 self-check failed", report["advice"]]


def test_a_qat_run_folder_names_its_fp32_onnx(tmp_path):
    (tmp_path / "qat.int8.onnx").write_bytes(b"x")
    (tmp_path / "fp32.onnx").write_bytes(b"x")
    assert float_sibling(tmp_path / "qat.int8.onnx") == tmp_path / "fp32.onnx"


def test_other_runners_get_the_cpu_line_only(tmp_path):
    report = machine_report(object(), tmp_path / "m.onnx")
    assert report["int8_note"] == report["advice"] == "" and machine_lines(report).startswith("CPU: ")
    assert machine_report(_Runner("weights7", "7 bits"), tmp_path / "m.onnx")["advice"] == ""
