"""What a classical model gets on the same held-out windows the trainer evaluates on."""

from __future__ import annotations

from dataclasses import dataclass

from dnahnet.config import DataConfig
from dnahnet.data.genome import Genome
from dnahnet.data.intervals import build_splits, eval_windows
from dnahnet.data.markov import best_order, fit


@dataclass
class MarkovResult:
    order: int
    bits_per_base: float
    by_order: dict[int, float]
    split: str
    windows: int
    seq_len: int


def markov_baseline(
    genome_path: str, data: DataConfig, order: int | None = None, max_order: int = 10, split: str = "valid"
) -> MarkovResult:
    """Order-K Markov model fitted on the train split, scored on the fixed eval windows of `split`.

    With `order=None`, every order 1..max_order is scored and the best is reported
    (all orders are listed, so the choice is visible).
    """
    genome = Genome(genome_path)
    splits = build_splits(genome, data)
    windows = eval_windows(splits[split], data.eval_windows, data.seq_len, data.seed, max_n_fraction=data.max_n_fraction)
    if order is None:
        best, scores = best_order(genome, splits["train"].intervals, windows, max_order=max_order)
        return MarkovResult(best, scores[best], scores, split, len(windows), data.seq_len)
    bpb = fit(genome, splits["train"].intervals, order).bits_per_base(windows, genome)
    return MarkovResult(order, bpb, {order: bpb}, split, len(windows), data.seq_len)
