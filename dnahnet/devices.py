"""One `--device` rule for every command: training, inference and benchmarks pick devices alike."""

from __future__ import annotations

import torch

from dnahnet.errors import DnahnetInputError


def resolve_device(device: str | torch.device | None = "auto", local_rank: int | None = None) -> torch.device:
    """None/"auto": CUDA when available, else CPU. An unknown or unavailable device is a one-line user error.

    `local_rank` (torchrun) turns a bare "cuda" into this process's GPU, `cuda:<local_rank>`.
    """
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise DnahnetInputError(f"--device: expected auto, cpu, cuda or cuda:N, got {str(device)!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DnahnetInputError(f"--device {device}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is None and local_rank is not None:
        return torch.device("cuda", local_rank)
    return dev
