"""What a classical model gets on the same held-out windows the trainer evaluates on."""

from __future__ import annotations

from dataclasses import dataclass, field

from dnahnet.config import DataConfig
from dnahnet.data.genome import Genome
from dnahnet.data.intervals import Split, Window, build_splits, eval_windows
from dnahnet.data.markov import MarkovModel, best_order, fit


@dataclass
class MarkovResult:
    """The chosen order and its score; the fitted model, splits and windows ride along so callers
    can score more regions or reuse the held-out windows without refitting or rebuilding them."""

    order: int
    bits_per_base: float
    by_order: dict[int, float]
    split: str
    windows: int
    seq_len: int
    model: MarkovModel | None = field(default=None, repr=False, compare=False)
    genome: Genome | None = field(default=None, repr=False, compare=False)
    splits: dict[str, Split] = field(default_factory=dict, repr=False, compare=False)
    held_out: list[Window] = field(default_factory=list, repr=False, compare=False)

    def summary(self) -> dict:
        """The reported figures (JSON-ready)."""
        return {"order": self.order, "bits_per_base": self.bits_per_base, "by_order": self.by_order,
                "split": self.split, "windows": self.windows, "seq_len": self.seq_len}


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
        order, scores, model = best_order(genome, splits["train"].intervals, windows, max_order=max_order)
    else:
        model = fit(genome, splits["train"].intervals, order)
        scores = {order: model.bits_per_base(windows, genome)}
    return MarkovResult(order, scores[order], scores, split, len(windows), data.seq_len,
                        model=model, genome=genome, splits=splits, held_out=windows)
