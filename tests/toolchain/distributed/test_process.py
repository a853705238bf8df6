"""The process group from torchrun's environment, clear errors, and lost ranks that end the job."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist

from base.errors import ToolchainError
from toolchain.distributed.config import DistributedConfig
from toolchain.distributed.process import (
    DistributedContext,
    RankLostError,
    average_over_ranks,
    barrier,
    collective_errors,
    cpu_threads,
    init_distributed,
    on_main,
)

TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
TWO_RANKS = DistributedContext(rank=1, world_size=2, local_world_size=2, backend="gloo", timeout_s=5)


@pytest.fixture()
def torchrun_env(monkeypatch):
    """Set (or clear) the variables torchrun gives a worker."""
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


@pytest.mark.parametrize(
    ("field", "value"), [("backend", "mpi"), ("lr_scaling", "cubic"), ("timeout_s", 0), ("base_batch", -1)]
)
def test_config_names_the_bad_field(field, value):
    with pytest.raises(ToolchainError, match=rf"^{field}: expected .*{value}"):
        DistributedConfig(**{field: value})


def test_without_torchrun_a_run_is_one_process(torchrun_env):
    ctx = init_distributed(DistributedConfig(), "cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed, ctx.backend) == (0, 1, True, False, None)
    assert not dist.is_initialized()
    assert init_distributed(DistributedConfig(), "0").device == torch.device("cuda:0")
    assert on_main(ctx, "work", lambda x: x + 1, 1) == 2
    barrier(ctx, "nothing")  # no process group: returns at once
    assert average_over_ranks({"box_loss": 0.5}, ctx) == {"box_loss": 0.5}


@pytest.mark.parametrize(
    ("env", "device", "message"),
    [
        ({"WORLD_SIZE": "2", "RANK": "x"}, "cpu", r"RANK='x': expected an integer"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "cpu", r"RANK=2, LOCAL_RANK=0: expected 0 <= rank < WORLD_SIZE=2"),
        ({"WORLD_SIZE": "2", "RANK": "1"}, "cpu", r"MASTER_ADDR and MASTER_PORT unset: start the job with torchrun"),
        ({"WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "tpu", r"--device tpu: under torchrun"),
    ],
)
def test_a_malformed_environment_is_one_clear_line(torchrun_env, env, device, message):
    torchrun_env(**env)
    with pytest.raises(ToolchainError, match=message):
        init_distributed(DistributedConfig(), device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_without_a_gpu_says_to_use_gloo(torchrun_env):
    torchrun_env(WORLD_SIZE="2", MASTER_ADDR="h", MASTER_PORT="1")
    with pytest.raises(ToolchainError, match=r"no CUDA device on this machine; use --device cpu \(gloo backend\)"):
        init_distributed(DistributedConfig(), "cuda")
    with pytest.raises(ToolchainError, match="backend nccl needs --device cuda"):
        init_distributed(DistributedConfig(backend="nccl"), "cpu")


def test_one_process_refuses_the_settings_many_would(torchrun_env):
    with pytest.raises(ToolchainError, match="backend nccl needs --device cuda"):
        init_distributed(DistributedConfig(backend="nccl"), "cpu")  # no WORLD_SIZE: one process, same answer


def test_a_lost_peer_becomes_a_rank_lost_error_and_our_own_bugs_do_not():
    gloo = "[../gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:38078: Connection reset by peer."
    with pytest.raises(RankLostError, match=r"^rank 1 of 2: QAT step 7 stopped: another rank died .* within 5 s"):
        with collective_errors(TWO_RANKS, "QAT step 7"):
            raise RuntimeError(gloo)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        with collective_errors(TWO_RANKS, "QAT step 7"):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
    with pytest.raises(RuntimeError, match="Connection reset"):  # one process: nothing to blame on a peer
        with collective_errors(DistributedContext(), "QAT step 7"):
            raise RuntimeError(gloo)


def test_cpu_threads_share_the_node():
    assert cpu_threads(TWO_RANKS) == max(1, (os.cpu_count() or 1) // 2)


def _exit_time(proc: subprocess.Popen, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            pytest.fail(f"rank 0 still ran {timeout} s after the start")
        time.sleep(0.05)
    return time.time()


@pytest.mark.slow
@pytest.mark.parametrize(("how", "bound"), [("KILL", (0.0, 10.0)), ("STOP", (4.5, 15.0))])
def test_a_lost_rank_ends_the_job_within_the_timeout(qat_inputs, launch, how, bound):
    """Rank 1 dies (KILL: its sockets close) or hangs (STOP: the 5 s timeout) at step 3; rank 0 exits
    by itself, without torchrun's agent (a node lost in a multi-node job), with one clear line."""
    started_ranks, _ = launch
    with started_ranks("train", qat_inputs, DDP_WORKER_STOP=f"1:3:{how}", DDP_WORKER_TIMEOUT="5") as (r0, r1):
        ended = _exit_time(r0, timeout=180)
        r1.kill()
        stopped_at = float(re.search(r"SIG\w+ at step 3, t=([\d.]+)", r1.communicate()[0]).group(1))
        _, err = r0.communicate()
    assert r0.returncode == 1
    assert re.search(
        r"^error: rank 0 of 2: QAT step \d+ stopped: another rank died or did not answer within 5 s", err, re.M
    ), err
    assert bound[0] <= ended - stopped_at <= bound[1], ended - stopped_at


@pytest.mark.slow
def test_torchrun_ends_the_job_when_a_rank_is_killed(qat_inputs, worker):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(worker.__file__), "train", str(qat_inputs)]  # fmt: skip
    env = {**os.environ, "DDP_WORKER_STOP": "1:3:KILL", "DDP_WORKER_TIMEOUT": "5", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its workers: the session this test started
            proc.communicate()
    assert proc.returncode != 0
    assert "rank 1: SIGKILL at step 3" in out
    assert re.search(r"exitcode\s*:\s*-9", err) and "Signal 9 (SIGKILL)" in err, err[-3000:]
