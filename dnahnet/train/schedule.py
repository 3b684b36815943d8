"""Learning-rate schedules as a pure function of the step, so a resumed run needs no scheduler object.

Both schedules warm up linearly over `warmup_steps` (step k uses (k + 1) / warmup),
then
- cosine: follow half a cosine from 1 at the first step after warmup down to
  `min_lr_ratio` at the last step;
- wsd (warmup-stable-decay): stay at 1, then decay linearly to `min_lr_ratio` over
  the last `decay_fraction` of the steps, reaching it at the last step. The stable
  phase is where the paper reads its data-efficiency comparison.
"""

from __future__ import annotations

import math

from dnahnet.config import TrainConfig
from dnahnet.errors import DnahnetInputError

SCHEDULES = ("cosine", "wsd")


def lr_factor(
    step: int,
    total_steps: int,
    *,
    schedule: str = "cosine",
    warmup_steps: int = 0,
    decay_fraction: float = 0.2,
    min_lr_ratio: float = 0.1,
) -> float:
    """Multiplier of the base learning rate at optimiser step `step` (0-based) of `total_steps`."""
    if schedule not in SCHEDULES:
        raise DnahnetInputError(f"schedule: must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        span = max(total_steps - 1 - warmup_steps, 1)
        t = min((step - warmup_steps) / span, 1.0)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    decay_steps = max(round(decay_fraction * total_steps), 1) if decay_fraction > 0 else 0
    decay_start = total_steps - decay_steps
    if step < decay_start:
        return 1.0
    t = min((step - decay_start + 1) / decay_steps, 1.0)
    return 1.0 - (1.0 - min_lr_ratio) * t


def schedule_factor(config: TrainConfig, step: int, total_steps: int) -> float:
    """`lr_factor` with the schedule settings of a TrainConfig."""
    return lr_factor(
        step,
        total_steps,
        schedule=config.schedule,
        warmup_steps=config.warmup_steps,
        decay_fraction=config.decay_fraction,
        min_lr_ratio=config.min_lr_ratio,
    )


def total_steps(config: TrainConfig) -> int:
    """Optimiser steps of a run: `steps`, or `bases` rounded up to whole steps of `tokens_per_step`."""
    if config.steps is not None and config.bases is not None:
        raise DnahnetInputError("give the training budget as steps or as bases, not both")
    if config.steps is not None:
        if config.steps < 1:
            raise DnahnetInputError(f"steps: must be positive, got {config.steps}")
        return int(config.steps)
    if config.bases is not None:
        if config.bases < 1:
            raise DnahnetInputError(f"bases: must be positive, got {config.bases}")
        return math.ceil(config.bases / config.tokens_per_step)
    raise DnahnetInputError("no training budget: set steps or bases (CLI: --steps N or --bases N)")
