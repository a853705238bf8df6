"""The effective batch and its learning rate: the stated rule for SGD (summed loss) and AdamW."""

from __future__ import annotations

import pytest
import torch

from base.errors import ToolchainError
from toolchain.distributed.lr import rescale_lr, scaled_lr
from toolchain.training.schedulers import ScheduleConfig, create_scheduler


@pytest.mark.parametrize(
    ("rule", "optimizer", "factor"),
    [("linear", "SGD", 1.0), ("sqrt", "SGD", 0.5), ("none", "SGD", 0.25),
     ("linear", "AdamW", 4.0), ("sqrt", "AdamW", 2.0), ("none", "AdamW", 1.0)],
)  # fmt: skip
def test_four_processes_of_the_base_batch(rule, optimizer, factor):
    rate = scaled_lr(0.01, batch=16, world_size=4, rule=rule, optimizer=optimizer)
    assert rate.effective_batch == 64 and rate.base_batch == 16
    assert rate.lr == pytest.approx(0.01 * factor)
    assert f"effective batch 64 (4 process(es) x 16); lr {rate.lr:.6g}" in str(rate)


def test_one_process_at_the_base_batch_keeps_lr0_and_base_batch_moves_the_reference():
    for rule in ("linear", "sqrt", "none"):
        assert scaled_lr(0.01, 16, 1, rule, optimizer="AdamW").lr == 0.01
    assert scaled_lr(0.01, 8, 2, "linear", base_batch=16, optimizer="AdamW").lr == pytest.approx(0.01)
    with pytest.raises(ToolchainError, match="lr_scaling must be one of"):
        scaled_lr(0.01, 8, 2, "cubic")


def test_resuming_at_another_world_size_rescales_optimizer_and_schedule():
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW(params, lr=0.04)
    scheduler = create_scheduler(optimizer, ScheduleConfig("cosine", lrf=0.1), epochs=4)
    optimizer.step()
    scheduler.step()
    before = optimizer.param_groups[0]["lr"]
    rescale_lr(optimizer, scheduler, 0.5)  # saved at 4 processes, resumed at 2 (linear, AdamW)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(before / 2)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.02 * scheduler.lr_lambdas[0](2))
