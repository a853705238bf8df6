"""Distributed QAT on ``torch.distributed`` (launched by ``torchrun``; NCCL on GPUs, gloo on CPUs).

- ``config``: ``DistributedConfig`` (backend, timeout, learning-rate scaling rule).
- ``process``: the process group from torchrun's environment, barriers, rank-0-only work, clear errors.
- ``model``: quantizer ranges broadcast from rank 0, DDP wrapping, a check that every rank holds the same model.
- ``data``: ultralytics' dataset sharded by a ``DistributedSampler`` reseeded every epoch.
- ``loss``: each rank's detection loss as its share of the whole batch's loss.
- ``lr``: the effective batch and the learning rate it gets.
"""
