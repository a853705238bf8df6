from __future__ import annotations

import pytest
import torch

from base.errors import ToolchainError
from toolchain.training.schedulers import ScheduleConfig, create_scheduler, lr_multiplier, quant_start_epoch


def test_cosine_with_warmup():
    f = lr_multiplier(ScheduleConfig("cosine", warmup_epochs=2, warmup_start=0.1, lrf=0.01), epochs=12)
    assert f(0) == pytest.approx(0.1) and f(1) == pytest.approx(0.55)
    assert f(2) == pytest.approx(1.0) and f(11) == pytest.approx(0.01)
    assert all(f(e) >= f(e + 1) for e in range(2, 11))


def test_restarts_step_and_qat():
    r = lr_multiplier(ScheduleConfig("cosine_restarts", cycle=3, lrf=0.0), epochs=9)
    assert [round(r(e), 3) for e in range(6)] == [1.0, 0.75, 0.25, 1.0, 0.75, 0.25]
    s = lr_multiplier(ScheduleConfig("step", step=2, gamma=0.5), epochs=6)
    assert [s(e) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    q = lr_multiplier(ScheduleConfig("qat", warmup_epochs=1, pre_quant=2, lrf=0.1), epochs=6)
    assert q(0) == pytest.approx(0.1) and q(1) == q(2) == 1.0 and q(5) == pytest.approx(0.1)


@pytest.mark.parametrize("warmup", [0, 1, 3])
@pytest.mark.parametrize("pre_quant", [0, 1, 2])
def test_quantization_starts_with_the_qat_cosine(warmup, pre_quant):
    cfg = ScheduleConfig("qat", warmup_epochs=warmup, pre_quant=pre_quant, lrf=0.1)
    f, start = lr_multiplier(cfg, epochs=warmup + pre_quant + 4), quant_start_epoch(cfg)
    if not pre_quant:  # no float epochs: quantized from the start, warm-up included
        assert start == 0
        return
    assert start == warmup + pre_quant
    assert all(f(e) == 1.0 for e in range(warmup, start + 1)) and f(start + 1) < 1.0  # the cosine starts at 1.0
    assert quant_start_epoch(ScheduleConfig("cosine", warmup_epochs=warmup, pre_quant=pre_quant)) == 0


def test_plateau_reduces_on_no_improvement():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = create_scheduler(opt, ScheduleConfig("plateau", patience=1, gamma=0.5), epochs=10)
    for metric in (0.5, 0.5, 0.5):
        sched.step(metric)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5)


def test_unknown_schedule():
    with pytest.raises(ToolchainError, match="name: expected one of \\[.cosine.*got .linear."):
        ScheduleConfig("linear")
