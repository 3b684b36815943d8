"""Training: the Trainer loop, schedules, checkpoints and distributed wrappers."""

from dnahnet.train.trainer import Trainer, pretrain, run_configs

__all__ = ["Trainer", "pretrain", "run_configs"]
