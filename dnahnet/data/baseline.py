"""What a classical model gets on the same held-out windows the trainer evaluates on, or on another genome.

`markov_baseline`: an order-K Markov model fitted on the train split of a genome and
scored on the trainer's fixed held-out windows (valid or test split).
`cross_genome_markov`: fitted on every ACGT base of one genome and scored on all of
(or regions of) another, so a cross-species baseline needs no Python.

In both, an order chosen automatically is chosen on held-out data of the fitting
genome, never on the figure that is reported as held-out: the valid split's windows
(`markov_baseline`; with `split="valid"` those are the reported windows and the
result says so), or the last fraction of each fitting sequence (`cross_genome_markov`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnahnet.config import DataConfig
from dnahnet.data.genome import Genome
from dnahnet.data.intervals import Interval, Split, Window, build_splits, eval_windows, fraction_splits, merge_intervals
from dnahnet.data.markov import MAX_ORDER, MarkovModel, best_order, fit, score_intervals
from dnahnet.errors import DnahnetInputError

HELD_OUT_SPLITS = ("valid", "test")
DEFAULT_MAX_ORDER = 10
HOLDOUT_WINDOW = 4096  # bases per window when the fitting genome's held-out part is sampled


def check_markov_options(order: int | None, max_order: int | None, split: str | None = None) -> int | None:
    """Validate the Markov options together; return the largest order to try (None when `order` is fixed).

    One-line errors name the option: an order outside 0..MAX_ORDER, a max order outside 1..MAX_ORDER,
    both given, or a split that is not held out (`train` would report an in-sample score).
    """
    if split is not None and split not in HELD_OUT_SPLITS:
        if split == "train":
            raise DnahnetInputError("--split train would score the windows the model was fitted on (an in-sample "
                                    "figure, not a held-out one); choose valid or test")
        raise DnahnetInputError(f"--split: {split!r} is not a held-out split; choose valid or test")
    if order is not None and max_order is not None:
        raise DnahnetInputError("give --order (a fixed order) or --max-order (choose the best of 1..N), not both")
    for flag, value, low in (("--order", order, 0), ("--max-order", max_order, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_ORDER):
            raise DnahnetInputError(f"{flag}: expected a whole number in {low}..{MAX_ORDER}, got {value!r}")
    return None if order is not None else (DEFAULT_MAX_ORDER if max_order is None else max_order)


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
    order_chosen_on: str | None = None  # split whose windows chose the order; None: the order was given
    model: MarkovModel | None = field(default=None, repr=False, compare=False)
    genome: Genome | None = field(default=None, repr=False, compare=False)
    splits: dict[str, Split] = field(default_factory=dict, repr=False, compare=False)
    held_out: list[Window] = field(default_factory=list, repr=False, compare=False)

    def summary(self) -> dict:
        """The reported figures (JSON-ready)."""
        return {"order": self.order, "bits_per_base": self.bits_per_base, "by_order": self.by_order,
                "split": self.split, "windows": self.windows, "seq_len": self.seq_len,
                "order_chosen_on": self.order_chosen_on}


def markov_baseline(
    genome_path: str, data: DataConfig, order: int | None = None, max_order: int | None = None, split: str = "valid"
) -> MarkovResult:
    """Order-K Markov model fitted on the train split, scored on the fixed eval windows of `split`.

    With `order=None`, every order 1..max_order (default 10) is scored on the valid split's windows and
    the best is used (all orders are listed, so the choice is visible); with `split="test"` the test
    windows then score only that order.
    """
    max_order = check_markov_options(order, max_order, split)
    if data.eval_windows < 1:
        raise DnahnetInputError(f"data.eval_windows is {data.eval_windows}: no held-out windows to score; set it to 1 or more")
    genome = Genome(genome_path)
    splits = build_splits(genome, data)
    if not splits[split].intervals:
        raise DnahnetInputError(f"the {split} split of this genome is empty; nothing held out to score", file=genome_path)

    def windows_of(name: str) -> list[Window]:
        return eval_windows(splits[name], data.eval_windows, data.seq_len, data.seed, max_n_fraction=data.max_n_fraction)

    windows = windows_of(split)
    chosen_on = None
    if order is None:
        if not splits["valid"].intervals:
            raise DnahnetInputError("choosing the order needs a valid split, and it is empty; give --order", file=genome_path)
        selection = windows if split == "valid" else windows_of("valid")
        order, scores, model = best_order(genome, splits["train"].intervals, selection, max_order=max_order)
        bits = scores[order] if split == "valid" else model.bits_per_base(windows, genome)
        chosen_on = "valid"
    else:
        model = fit(genome, splits["train"].intervals, order)
        bits = model.bits_per_base(windows, genome)
        scores = {order: bits}
    return MarkovResult(order, bits, scores, split, len(windows), data.seq_len, order_chosen_on=chosen_on,
                        model=model, genome=genome, splits=splits, held_out=windows)


@dataclass
class CrossGenomeResult:
    """A Markov model fitted on one genome and scored on another (bits per base: mean over scored positions)."""

    fit_genome: str
    eval_genome: str
    order: int
    bits_per_base: float
    positions_scored: int  # ACGT targets scored (both strands: counted once per strand)
    n_bases: int  # N (non-ACGT) bases inside the evaluated regions, never scored
    regions: int
    region_bases: int
    both_strands: bool
    by_order: dict[int, float]  # held-out bits/base on the fitting genome, per order tried
    holdout_fraction: float
    holdout_positions: int  # positions of the fitting genome's held-out part scored to choose (or check) the order
    fit_kmers: int  # (K+1)-mers counted for the final model
    model: MarkovModel | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict:
        keys = ("fit_genome", "eval_genome", "order", "bits_per_base", "positions_scored", "n_bases", "regions",
                "region_bases", "both_strands", "by_order", "holdout_fraction", "holdout_positions", "fit_kmers")
        return {k: getattr(self, k) for k in keys}


def _held_out_part(genome, fraction: float, max_bases: int, seed: int = 0) -> tuple[list[Interval], list[Interval]]:
    """(fitting intervals, held-out intervals): the last `fraction` of each sequence's ACGT bases is held out;
    when that is more than `max_bases`, a fixed random set of non-overlapping windows of it is scored instead."""
    splits = fraction_splits(genome, fraction, 0.0)
    train, held = splits["train"].intervals, splits["valid"].intervals
    if not train or not held:
        raise DnahnetInputError(f"--holdout-fraction {fraction}: the fitting genome has too few ACGT bases to hold "
                                "part out (give --order to skip choosing the order)", file=str(genome.path))
    if splits["valid"].bases > max_bases:
        windows = eval_windows(splits["valid"], max(max_bases // HOLDOUT_WINDOW, 1), HOLDOUT_WINDOW, seed, max_n_fraction=0.5)
        held = [Interval(w.chrom, w.start, w.end) for w in dict.fromkeys(windows)]
    return train, held


def cross_genome_markov(
    fit_path: str,
    eval_path: str,
    *,
    order: int | None = None,
    max_order: int | None = None,
    both_strands: bool = False,
    regions: list[tuple[str, int, int]] | None = None,
    holdout_fraction: float = 0.1,
    holdout_max_bases: int = 2_000_000,
) -> CrossGenomeResult:
    """Fit an order-K Markov model on every ACGT base of `fit_path`, score `eval_path` (or its `regions`).

    The order (unless given) is the best of 1..max_order on the last `holdout_fraction` of each fitting
    sequence, with the model counted on the rest; the eval genome plays no part in the choice. The final
    model is then counted on the whole fitting genome (held-out part included). Regions (0-based
    half-open) are merged where they overlap, so no base is scored twice.
    """
    from dnahnet.data.corpus import open_genome

    max_order = check_markov_options(order, max_order)
    if not 0 < holdout_fraction < 1:
        raise DnahnetInputError(f"--holdout-fraction: expected a number between 0 and 1, got {holdout_fraction}")
    fit_genome, eval_genome = open_genome(fit_path), open_genome(eval_path)
    if regions is None:
        ivs = [Interval(c, 0, eval_genome.sizes[c]) for c in eval_genome.names]
    else:
        ivs = merge_intervals([Interval(c, s, e) for c, s, e in regions if e > s], order=list(eval_genome.names))
    n_bases = sum(int(eval_genome.n_counts(iv.chrom, iv.start, iv.end)) for iv in ivs)
    if n_bases == sum(iv.end - iv.start for iv in ivs):  # checked before any fitting
        raise DnahnetInputError("no ACGT bases to score in the evaluated regions (all N or empty)", file=eval_path)
    train, held = _held_out_part(fit_genome, holdout_fraction, holdout_max_bases)
    top = order if order is not None else max_order
    counts = fit(fit_genome, train, top, both_strands=both_strands)
    by_order: dict[int, float] = {}
    holdout_positions = 0
    for k in ([order] if order is not None else range(1, top + 1)):
        bits, holdout_positions = score_intervals(counts.with_order(k), fit_genome, held, both_strands=both_strands)
        by_order[k] = bits / holdout_positions if holdout_positions else float("nan")
    if not holdout_positions:
        raise DnahnetInputError("the held-out part of the fitting genome has no ACGT bases to score", file=fit_path)
    chosen = order if order is not None else min(by_order, key=by_order.get)
    everything = [Interval(c, 0, fit_genome.sizes[c]) for c in fit_genome.names]
    model = fit(fit_genome, everything, chosen, both_strands=both_strands)
    if model.counts.sum() == 0:
        raise DnahnetInputError(f"no ACGT {chosen + 1}-mers to fit", file=fit_path)
    bits, positions = score_intervals(model, eval_genome, ivs, both_strands=both_strands)
    if positions == 0:  # e.g. single-base regions: the first base of each is not scored
        raise DnahnetInputError("no ACGT bases to score in the evaluated regions (the first base of each is not "
                                "scored)", file=eval_path)
    return CrossGenomeResult(
        fit_genome=str(fit_path), eval_genome=str(eval_path), order=chosen, bits_per_base=bits / positions,
        positions_scored=positions, n_bases=n_bases, regions=len(ivs), region_bases=sum(iv.end - iv.start for iv in ivs),
        both_strands=both_strands, by_order=by_order, holdout_fraction=holdout_fraction,
        holdout_positions=holdout_positions, fit_kmers=int(model.counts.sum()), model=model,
    )
