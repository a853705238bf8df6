"""One process of a ``torchrun`` job: the process group from torchrun's environment, this rank's
device, barriers that name a missing rank, work done on rank 0 only, and lost ranks reported in one line.

A rank that dies closes its sockets and the others fail at once; a rank that hangs makes the others
fail after ``DistributedConfig.timeout_s``. Either way the survivors raise ``RankLostError`` (a
``ToolchainError``: one line, exit status 1), and ``torchrun`` stops the rest of the job.

Example:
    >>> ctx = init_distributed(DistributedConfig(timeout_s=600), device="cuda")
    >>> with collective_errors(ctx, "QAT epoch 3"):
    ...     train_one_epoch()
    >>> with main_first(ctx, "label cache"):
    ...     dataset = build_dataset()
    >>> metrics = on_main(ctx, "validation", validate)
    >>> shutdown(ctx)
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from base.errors import ToolchainError
from toolchain.distributed.config import DistributedConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")

# What gloo and NCCL say when a peer is gone or silent (they raise plain RuntimeErrors).
_LOST_PEER = re.compile(r"gloo|nccl|timed out|timeout|connection (reset|closed|refused)|broken pipe|peer", re.I)


class RankLostError(ToolchainError):
    """Another rank of the job died, hung past the timeout, or failed on its own."""


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job (a one-process job is ``world_size == 1``).

    Attributes:
        rank: Global rank (0 is the main rank: evaluation, checkpoints, logs).
        local_rank: Rank on this node; picks the GPU.
        world_size: Processes in the job.
        local_world_size: Processes on this node (they share its CPU cores).
        device: This rank's device.
        backend: ``nccl``, ``gloo``, or ``None`` without a process group.
        timeout_s: How long collectives wait for the other ranks.
        cpu_group: A gloo group for barriers and Python objects (``None``: the default group, itself gloo).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    timeout_s: float = 1800.0
    cpu_group: Any = None

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __str__(self) -> str:
        return f"rank {self.rank} of {self.world_size}"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ToolchainError(f"environment variable {name}={raw!r}: expected an integer (torchrun sets it)") from None


def _rank_device(device: str, local_rank: int, local_world_size: int) -> torch.device:
    """CPU, or the GPU of this rank's ``LOCAL_RANK`` (a ``--device cuda:N`` index is replaced by it)."""
    if device == "cpu":
        return torch.device("cpu")
    if not (device.startswith("cuda") or device.replace(",", "").isdigit()):
        raise ToolchainError(f"--device {device}: under torchrun, expected cpu or cuda (each rank uses GPU LOCAL_RANK)")
    if not torch.cuda.is_available():
        raise ToolchainError(f"--device {device}: no CUDA device on this machine; use --device cpu (gloo backend)")
    count = torch.cuda.device_count()
    if local_world_size > count:
        raise ToolchainError(
            f"{local_world_size} processes on this node but {count} GPU(s): use --nproc-per-node {count} or fewer"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _backend(cfg: DistributedConfig, device: torch.device) -> str:
    if cfg.backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if cfg.backend == "nccl" and device.type != "cuda":
        raise ToolchainError("distributed: backend nccl needs --device cuda; use backend gloo (or auto) on CPUs")
    return cfg.backend


def init_distributed(cfg: DistributedConfig, device: str = "cpu") -> DistributedContext:
    """Join the job ``torchrun`` started (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``PORT``).

    Without ``WORLD_SIZE`` (or with 1) this is a one-process run: no process group, ``device`` as given.

    Raises:
        ToolchainError: A malformed environment, more processes than GPUs, NCCL without CUDA.
        RankLostError: Not every rank joined within the timeout.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        one = torch.device("cuda:0" if device == "0" else device)
        _backend(cfg, one)  # the same settings are refused with one process as with many
        return DistributedContext(device=one, timeout_s=cfg.timeout_s)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    if not 0 <= rank < world or not 0 <= local_rank < local_world:
        raise ToolchainError(f"RANK={rank}, LOCAL_RANK={local_rank}: expected 0 <= rank < WORLD_SIZE={world}")
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise ToolchainError(f"WORLD_SIZE={world} but {' and '.join(missing)} unset: start the job with torchrun")
    dev = _rank_device(device, local_rank, local_world)
    backend = _backend(cfg, dev)
    if backend == "nccl":  # a failed or timed-out collective aborts the process instead of hanging it
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    timeout = datetime.timedelta(seconds=cfg.timeout_s)
    ctx = DistributedContext(rank, local_rank, world, local_world, dev, backend, cfg.timeout_s)
    with collective_errors(ctx, "joining the job"):
        dist.init_process_group(backend, timeout=timeout, **({"device_id": dev} if backend == "nccl" else {}))
        cpu_group = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    label_logs(rank)
    logger.info("%s (local %d) on %s, %s backend, timeout %.0f s", ctx, local_rank, dev, backend, cfg.timeout_s)
    return DistributedContext(rank, local_rank, world, local_world, dev, backend, cfg.timeout_s, cpu_group)


class _RankPrefix(logging.Formatter):
    """Another formatter's line, prefixed with ``[rank N]``."""

    def __init__(self, inner: logging.Formatter | None, rank: int) -> None:
        super().__init__()
        self.inner, self.rank = inner or logging.Formatter(), rank

    def format(self, record: logging.LogRecord) -> str:
        return f"[rank {self.rank}] {self.inner.format(record)}"


def label_logs(rank: int) -> None:
    """Prefix this process's log lines with its rank; ranks other than 0 log warnings and errors only
    (rank 0 tells the job's story; ultralytics silences those ranks itself through ``RANK``)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not isinstance(handler.formatter, _RankPrefix):
            handler.setFormatter(_RankPrefix(handler.formatter, rank))
    if rank != 0:
        root.setLevel(max(root.level, logging.WARNING))


def cpu_threads(ctx: DistributedContext) -> int:
    """Torch threads for this rank: the node's cores shared by the processes on it."""
    return max(1, (os.cpu_count() or 1) // ctx.local_world_size)


def is_collective_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed collective (a lost or silent peer) rather than a bug of our own."""
    return isinstance(exc, dist.DistError) or (isinstance(exc, RuntimeError) and bool(_LOST_PEER.search(str(exc))))


@contextlib.contextmanager
def collective_errors(ctx: DistributedContext, stage: str) -> Iterator[None]:
    """Inside, a collective that fails because another rank is gone raises ``RankLostError`` naming ``stage``."""
    try:
        yield
    except RankLostError:
        raise
    except Exception as exc:
        if not ctx.is_distributed or not is_collective_failure(exc):
            raise
        cause = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise RankLostError(
            f"{ctx}: {stage} stopped: another rank died or did not answer within {ctx.timeout_s:g} s "
            f"(the process-group timeout); that rank's own log says why. Backend: {cause}"
        ) from exc


def barrier(ctx: DistributedContext, stage: str) -> None:
    """Wait for every rank; after ``timeout_s`` rank 0 names the ranks that did not arrive."""
    if not ctx.is_distributed:
        return
    with collective_errors(ctx, f"the barrier after {stage}"):
        dist.monitored_barrier(ctx.cpu_group, datetime.timedelta(seconds=ctx.timeout_s), wait_all_ranks=True)


@contextlib.contextmanager
def main_first(ctx: DistributedContext, stage: str) -> Iterator[None]:
    """Rank 0 runs the block first (it writes caches: ultralytics' label cache), then the others read them."""
    if not ctx.is_main:
        barrier(ctx, f"rank 0's {stage}")
    yield
    if ctx.is_main:
        barrier(ctx, f"rank 0's {stage}")


def broadcast_object(obj: T, ctx: DistributedContext, src: int = 0) -> T:
    """``obj`` of rank ``src`` on every rank (pickled, over the CPU group)."""
    if not ctx.is_distributed:
        return obj
    box = [obj]
    with collective_errors(ctx, "a broadcast from rank 0"):
        dist.broadcast_object_list(box, src=src, group=ctx.cpu_group)
    return box[0]


def average_over_ranks(values: dict[str, float], ctx: DistributedContext) -> dict[str, float]:
    """The mean of each value over the ranks (every rank must call it with the same keys): epoch losses."""
    if not ctx.is_distributed or not values:
        return dict(values)
    keys = sorted(values)
    total = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    with collective_errors(ctx, "averaging over ranks"):
        dist.all_reduce(total, group=ctx.cpu_group)
    return {k: v / ctx.world_size for k, v in zip(keys, total.tolist())}


def on_main(ctx: DistributedContext, stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on rank 0 only and give every rank its result (the others wait, up to the timeout).

    A failure on rank 0 is re-raised there and reported on the other ranks as ``RankLostError``
    with rank 0's message, so no rank waits for a result that will not come.
    """
    if not ctx.is_distributed:
        return fn(*args, **kwargs)
    outcome: tuple[str, Any] = ("ok", None)
    if ctx.is_main:
        try:
            outcome = ("ok", fn(*args, **kwargs))
        except Exception as exc:
            broadcast_object(("failed", f"{type(exc).__name__}: {exc}"), ctx)
            raise
    status, value = broadcast_object(outcome, ctx)
    if status == "failed":
        raise RankLostError(f"{ctx}: rank 0 failed in {stage}: {value}")
    return value


def shutdown(ctx: DistributedContext) -> None:
    """Leave the process group (nothing to do in a one-process run).

    Garbage is collected first: a DDP wrapper kept alive by a reference cycle (its trainer) must drop its
    reducer while the group exists, not during interpreter exit, where gloo's threads can abort the process.
    """
    if ctx.is_distributed and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()
