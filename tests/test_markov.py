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
