"""The order-K Markov baseline: exact counts on hand-checkable input, sane bits per base on real chr22."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from dnahnet.data import markov
from dnahnet.data.genome import Genome
from dnahnet.data.intervals import Interval, eval_windows, fraction_splits
from dnahnet.errors import DnahnetInputError


def test_counts_and_bits_equal_a_hand_count(write_fasta, data_cache):
    g = Genome(write_fasta({"s": "ACGTACGTAA"}), cache_dir=data_cache)
    model = markov.fit(g, [Interval("s", 0, 10)], order=1)
    # pairs: AC CG GT TA AC CG GT TA AA
    expected = np.zeros((4, 4), dtype=np.int64)
    for ctx, nxt in [("A", "C"), ("C", "G"), ("G", "T"), ("T", "A")] * 2 + [("A", "A")]:
        expected["ACGT".index(ctx), "ACGT".index(nxt)] += 1
    assert np.array_equal(model.counts, expected)
    # "ACA": P(C|A) = (2+1)/(3+4), P(A|C) = (0+1)/(2+4); position 0 is not a target
    assert model.bits_per_base([b"ACA"]) == pytest.approx(-(math.log2(3 / 7) + math.log2(1 / 6)) / 2)
    # an N target is not scored, and the base after N backs off to order 0: P(A) = (3+1)/(9+4)
    lp = model.log2_probs(b"ANA")
    assert np.isnan(lp[1]) and lp[2] == pytest.approx(math.log2(4 / 13))


def test_vectorised_counts_match_a_dictionary_count(write_fasta, data_cache):
    rng = np.random.default_rng(0)
    seq = bytes(rng.choice(list(b"ACGTNacgt"), p=[0.22, 0.22, 0.22, 0.22, 0.02, 0.03, 0.03, 0.03, 0.01], size=20_000).astype(np.uint8))
    g = Genome(write_fasta({"r": seq}), cache_dir=data_cache)
    order = 3
    upper = seq.upper().decode()
    hand = Counter(upper[i - order : i + 1] for i in range(order, len(upper)) if "N" not in upper[i - order : i + 1])
    small_chunks = markov.fit(g, [Interval("r", 0, 20_000)], order, chunk=997)
    whole = markov.fit(g, [Interval("r", 0, 20_000)], order)
    assert np.array_equal(small_chunks.counts, whole.counts)
    for kmer, n in hand.items():
        ctx = sum("ACGT".index(b) * 4 ** (order - 1 - j) for j, b in enumerate(kmer[:-1]))
        assert whole.counts[ctx, "ACGT".index(kmer[-1])] == n
    assert whole.counts.sum() == sum(hand.values())


def test_lower_orders_are_marginals(write_fasta, data_cache):
    rng = np.random.default_rng(1)
    g = Genome(write_fasta({"r": bytes(rng.choice(list(b"ACGT"), size=5000).astype(np.uint8))}), cache_dir=data_cache)
    m4 = markov.fit(g, [Interval("r", 0, 5000)], 4)
    m2 = markov.fit(g, [Interval("r", 0, 5000)], 2)
    # identical except for the two targets (positions 2, 3) that only the order-2 count sees
    diff = m2.counts - m4.with_order(2).counts
    assert diff.sum() == 2 and (diff >= 0).all()


def test_bits_per_base_on_held_out_chr22(demo_genome):
    splits = fraction_splits(demo_genome, 0.05, 0.05)
    valid = eval_windows(splits["valid"], 64, 1024, seed=0)
    best, scores, model = markov.best_order(demo_genome, splits["train"].intervals, valid, max_order=8)
    assert list(scores) == list(range(1, 9))
    assert all(1.5 < s < 2.0 for s in scores.values())
    assert scores[1] > scores[5] > scores[best]  # context helps on real DNA
    assert 5 <= best <= 8
    assert scores[best] < 1.9
    assert model.order == best and model.bits_per_base(valid, demo_genome) == scores[best]


def test_order_out_of_range(demo_genome):
    with pytest.raises(DnahnetInputError, match="order"):
        markov.fit(demo_genome, [], 13)


def _revcomp(seq: str) -> str:
    return seq.translate(str.maketrans("ACGTNacgtn", "TGCANtgcan"))[::-1]


def test_both_strands_counts_add_the_reverse_complement(write_fasta, data_cache):
    rng = np.random.default_rng(2)
    seq = "".join(rng.choice(list("ACGTN"), p=[0.3, 0.2, 0.2, 0.28, 0.02], size=3000))
    g = Genome(write_fasta({"r": seq}), cache_dir=data_cache)
    rc = Genome(write_fasta({"r": _revcomp(seq)}, name="rc.fa"), cache_dir=data_cache)
    iv = [Interval("r", 0, 3000)]
    both = markov.fit(g, iv, 3, both_strands=True, chunk=257)  # chunk edges inside the interval
    expected = markov.fit(g, iv, 3).counts + markov.fit(rc, iv, 3).counts
    assert np.array_equal(both.counts, expected)
    # order 0 on both strands: A and T (C and G) are counted equally often
    zero = markov.fit(g, iv, 0, both_strands=True).counts.ravel()
    assert zero[0] == zero[3] == seq.count("A") + seq.count("T") and zero[1] == zero[2] == seq.count("C") + seq.count("G")


def test_chunked_interval_scoring_equals_scoring_at_once(write_fasta, data_cache):
    rng = np.random.default_rng(3)
    seq = "".join(rng.choice(list("ACGTN"), p=[0.25, 0.25, 0.24, 0.24, 0.02], size=5000))
    g = Genome(write_fasta({"r": seq}), cache_dir=data_cache)
    model = markov.fit(g, [Interval("r", 0, 5000)], 4)
    iv = Interval("r", 100, 4900)
    bits, n = markov.score_intervals(model, g, [iv], chunk=333)
    lp = model.log2_probs(seq[100:4900])[1:]
    assert n == int((~np.isnan(lp)).sum()) and bits == pytest.approx(-np.nansum(lp))
    both, n2 = markov.score_intervals(model, g, [iv], both_strands=True, chunk=333)
    lp_rc = model.log2_probs(_revcomp(seq[100:4900]))[1:]
    assert n2 == n + int((~np.isnan(lp_rc)).sum()) and both == pytest.approx(-np.nansum(lp) - np.nansum(lp_rc))


def test_cross_genome_order_is_chosen_on_the_fitting_genome_only(write_fasta, data_cache, demo_sequence):
    from dnahnet.data.baseline import cross_genome_markov

    acgt = demo_sequence.upper().replace(b"N", b"")  # real human DNA, assembly gaps dropped
    fit_path = write_fasta({"a": acgt[:150_000], "b": acgt[150_000:300_000]}, name="fit.fa")
    eval_seq = acgt[400_000:420_000] + b"N" * 50 + acgt[420_000:430_000]
    eval_path = write_fasta({"e": eval_seq}, name="eval.fa")
    other = write_fasta({"x": bytes(np.random.default_rng(4).choice(list(b"AT"), size=20_000).astype(np.uint8))}, name="other.fa")
    r = cross_genome_markov(str(fit_path), str(eval_path), max_order=6)
    assert list(r.by_order) == [1, 2, 3, 4, 5, 6] and r.order == min(r.by_order, key=r.by_order.get)
    assert r.holdout_positions == pytest.approx(30_000, abs=10)  # the last 10% of each fitting sequence
    # the eval genome plays no part in the choice
    r2 = cross_genome_markov(str(fit_path), str(other), max_order=6)
    assert r2.by_order == r.by_order and r2.order == r.order
    # the reported figure: the chosen order refitted on all of the fitting genome, N not scored, first base skipped
    g = Genome(fit_path, cache_dir=data_cache)
    model = markov.fit(g, [Interval("a", 0, 150_000), Interval("b", 0, 150_000)], r.order)
    lp = model.log2_probs(eval_seq)[1:]
    assert r.positions_scored == 30_000 - 1 and r.n_bases == 50
    assert r.bits_per_base == pytest.approx(-np.nansum(lp) / r.positions_scored)
    assert 1.7 < r.bits_per_base < 2.0
    # a region of the eval genome (0-based half-open), overlapping regions merged
    part = cross_genome_markov(str(fit_path), str(eval_path), order=r.order, regions=[("e", 0, 10_000), ("e", 5_000, 12_000)])
    assert part.regions == 1 and part.positions_scored == 12_000 - 1
    assert part.bits_per_base == pytest.approx(-np.nansum(model.log2_probs(eval_seq[:12_000])[1:]) / (12_000 - 1))


def test_markov_options_are_checked_together():
    from dnahnet.data.baseline import check_markov_options

    assert check_markov_options(None, None) == 10 and check_markov_options(None, 4) == 4 and check_markov_options(0, None) is None
    for args, message in [((None, 0), "--max-order: expected a whole number in 1..12, got 0"),
                          ((None, -2), "--max-order"), ((None, 13), "--max-order"), ((-1, None), "--order"),
                          ((3, 5), "not both"), ((None, None, "xyz"), "'xyz' is not a held-out split; choose valid or test"),
                          ((None, None, "train"), "in-sample")]:
        with pytest.raises(DnahnetInputError, match=message.replace("(", r"\(").replace(".", r"\.")):
            check_markov_options(*args)


def test_test_split_is_scored_with_the_order_chosen_on_valid(demo_genome):
    from dnahnet.config import DataConfig
    from dnahnet.data.baseline import markov_baseline

    data = DataConfig(genome=[str(demo_genome.path)], seq_len=512, eval_windows=8)
    valid = markov_baseline(str(demo_genome.path), data, max_order=5)
    test = markov_baseline(str(demo_genome.path), data, max_order=5, split="test")
    assert test.order_chosen_on == valid.order_chosen_on == "valid"
    assert test.order == valid.order and test.by_order == valid.by_order  # the choice never sees the test windows
    assert test.bits_per_base == pytest.approx(test.model.bits_per_base(test.held_out, test.genome))
    assert test.bits_per_base != valid.bits_per_base
