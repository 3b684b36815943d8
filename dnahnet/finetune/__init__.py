"""dnahnet.finetune: labelled sets, linear probes and full fine-tuning, metrics, run folders that predict."""

from dnahnet.finetune.full import FullConfig
from dnahnet.finetune.run import finetune, load_head, predict_table

__all__ = ["FullConfig", "finetune", "load_head", "predict_table"]
