"""The ``toolchain parity`` job (``parity_run``: through the command line): its verdicts, and the mAP gap
judged against the float32 floor."""

from __future__ import annotations

from dataclasses import replace

import pytest

from toolchain.cli import main
from toolchain.jobs import parity


def test_parity_command(parity_run, ptq_run, tiny_dataset, tiny_checkpoint, capsys):
    assert parity_run.code == 0, parity_run.err
    assert "layer-aligned" in parity_run.out and "parity: OK" in parity_run.out
    onnx = ptq_run.folder / "tiny.int8.onnx"
    args = [
        "parity",
        "--model",
        str(tiny_checkpoint),
        "--onnx",
        str(onnx),
        "--data",
        str(tiny_dataset),
        "--images",
        "2",
    ]
    assert main(args) == 1
    assert "not a fake-quant model" in capsys.readouterr().err


@pytest.mark.parametrize(("jitters", "floor", "code", "said"), [
    ((0.02, 0.15), 0.0, 1, "FAIL: mAP50-95 differs by"),  # a real gap: every box of one runtime 15% off
    ((0.02, 0.15), None, 1, "FAIL: mAP50-95 differs by"),  # the same, over 3x a floor of a tenth of it
    ((0.02, 0.15), 1.0, 0, "parity: OK"),  # real, but rounding alone moves this model's mAP as much
    ((0.05, 0.05), 0.0, 0, "parity: OK"),  # over the bound on 40 images, but within noise
])  # fmt: skip
def test_an_map_gap_fails_only_when_over_the_float_floor_and_real(ptq_run, tiny_dataset, monkeypatch, capsys, jitters,
                                                                  floor, code, said):  # fmt: skip
    """The layer-aligned comparison passes; the mAP of the two runtimes is replaced by made-up
    detections on 40 images, so the gap and its paired interval are known; the float32 floor (the
    fake-quant model under other arithmetic) is set to a fraction of the gap."""
    from tests.toolchain.training.test_qat_report import _scored

    onnx_result, torch_result = _scored(jitters[0], 0), _scored(jitters[1], 1)
    gap = onnx_result.map50_95 - torch_result.map50_95
    assert abs(gap) > 0.002  # over the default bound either way
    moved = abs(gap) * (0.1 if floor is None else floor)
    floor_results = {"reference kernels": replace(torch_result, map50_95=torch_result.map50_95 + moved),
                     "float64": torch_result}  # fmt: skip
    monkeypatch.setattr(parity, "evaluate_onnx_and_torch", lambda *a: (onnx_result, torch_result))
    monkeypatch.setattr(parity, "evaluate_float_floor", lambda *a: floor_results)
    args = ["parity", "--model", str(ptq_run.folder / "tiny.int8.pt"), "--onnx", str(ptq_run.folder / "tiny.int8.onnx"),
            "--data", str(tiny_dataset), "--images", "2"]  # fmt: skip
    assert main(args) == code
    out = capsys.readouterr().out
    assert said in out and f"difference {gap:+.4f} [" in out
    assert f"reference kernels {moved:+.4f}, float64 +0.0000" in out
    assert ("real" in out.split("difference", 1)[1]) is (jitters[1] == 0.15)
