"""Sequence-context null: k-mer routing is explained away, sequence-independent edge boundaries are not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control
from sklearn.metrics import roc_auc_score

from dnahnet.analysis.annotations import FeatureTable
from dnahnet.analysis.context_null import (
    MIN_PER_KMER,
    PSEUDOCOUNT,
    ContextModel,
    SequenceAxis,
    choose_order,
    level_counts,
    predictability,
    shrunk_rates,
    split_halves,
)
from dnahnet.analysis.enrichment import BoundarySet, _spaces, analyse_boundaries, edge_enrichment
from dnahnet.analysis.multiple_testing import bh_qvalues, bootstrap_folds, empirical_p, interval
from dnahnet.analysis.start_codons import start_codon_control

SIZE = 120_000
REGIONS = {"c1": (np.array([0]), np.array([SIZE]))}
ACGT = np.frombuffer(b"ACGT", dtype=np.uint8)


def random_sequence(rng, size=SIZE) -> np.ndarray:
    return ACGT[rng.integers(0, 4, size)].copy()


def plant(seq: np.ndarray, at: np.ndarray, text: bytes) -> None:
    for i, b in enumerate(text):
        seq[at + i] = b


def axis_of(seq: np.ndarray, regions=REGIONS) -> SequenceAxis:
    return SequenceAxis.from_regions(_spaces(regions), [seq])


def chunks(name: str, pos: np.ndarray) -> BoundarySet:
    pos = np.unique(np.r_[0, pos])
    return BoundarySet(name, {"c1": pos}, {"c1": np.r_[pos[1:], SIZE]})


def ag_rule(seq: np.ndarray, rng, background=0.1) -> np.ndarray:
    """Boundary at x wherever the 2-mer ending at x is AG, plus a sequence-blind background."""
    ag = np.flatnonzero((seq[:-1] == ord("A")) & (seq[1:] == ord("G"))) + 1
    return np.unique(np.r_[ag, np.flatnonzero(rng.random(seq.size) < background)])


def features_at(starts: np.ndarray) -> FeatureTable:
    return FeatureTable.from_rows([("c1", int(s), int(s) + 50, "+", "site", f"f{i}", "", "", -1)
                                   for i, s in enumerate(starts)])


def feature_starts(rng, n=400) -> np.ndarray:
    return np.sort(rng.choice(np.arange(100, SIZE - 100, 250), n, replace=False))


def context_row(bset, features, seq, k=None, edge="start", window=0):
    axis = axis_of(seq)
    flags = axis.flags(bset.starts, _spaces(REGIONS))
    k = k or choose_order(predictability(axis, flags, max_k=4), axis.size).k
    rows = edge_enrichment([bset], features, REGIONS, window=window, permutations=200,
                           context={bset.name: ContextModel.fit(axis, flags, k)})
    return next(r for r in rows if r["feature"] == "site" and r["edge"] == edge), k


def test_kmer_rule_boundaries_give_context_fold_one_where_the_shift_null_calls_enrichment():
    rng = np.random.default_rng(0)
    seq = random_sequence(rng)
    starts = feature_starts(rng)
    plant(seq, starts - 1, b"AG")  # every feature start carries the AG that the rule cuts after
    bset = chunks("stage1", ag_rule(seq, rng))
    row, k = context_row(bset, features_at(starts), seq, window=2)
    assert k >= 2  # the rule needs two bases of context, and held-out log-loss finds that
    assert row["fold"] > 1.5 and row["fold_lo"] > 1.3 and row["p_enriched"] == pytest.approx(1 / 201)  # shift null: enriched
    assert row["context_fold"] == pytest.approx(1.0, abs=0.05)
    assert row["context_fold_lo"] <= 1 <= row["context_fold_hi"] and row["context_p"] > 0.05


def test_boundaries_planted_at_feature_edges_beyond_the_kmer_rule_keep_context_fold_above_one():
    rng = np.random.default_rng(1)
    seq = random_sequence(rng)
    starts = feature_starts(rng)
    bset = chunks("stage1", np.r_[ag_rule(seq, rng, background=0.2), starts])  # edges whatever their sequence
    row, _ = context_row(bset, features_at(starts), seq, window=2)
    assert row["context_fold"] > 1.3 and row["context_fold_lo"] > 1
    assert row["context_p"] == pytest.approx(2 / 201)  # two-sided floor of 200 draws


def test_context_expectation_is_fitted_outside_the_windows():
    """All boundaries inside the windows: outside rates are 0 except background, so expected stays small."""
    rng = np.random.default_rng(2)
    seq = random_sequence(rng)
    axis = axis_of(seq)
    flags = np.zeros(SIZE, bool)
    flags[1000:1100] = True
    model = ContextModel.fit(axis, flags, 2)
    prob, cls, rates = model.expected(np.arange(1000, 1100))
    assert prob.sum() == 0 and rates.max() == 0
    inside, _, _ = model.expected(np.arange(5000, 5100))  # windows elsewhere: the 100 boundaries now count
    assert inside.sum() == pytest.approx(100 / SIZE * 100, rel=0.5)


def test_shrunk_rates_follow_raw_rates_for_frequent_kmers_and_parents_for_unseen_ones():
    rng = np.random.default_rng(3)
    seq = random_sequence(rng)
    axis = axis_of(seq)
    flags = (seq == ord("G"))  # boundary wherever the current base is G: a 1-mer rule
    rates = shrunk_rates(level_counts(axis, flags, 3))
    kmers_ending_in_g = [c for c in range(64) if c & 3 == 2]
    assert np.allclose(rates[kmers_ending_in_g], 1, atol=0.01)
    assert np.allclose(np.delete(rates[:64], kmers_ending_in_g), 0, atol=0.01)
    assert rates.size == 65  # 64 3-mers and the short-context class (the first two positions)


def test_predictability_auroc_equals_sklearn_per_position_and_a_one_mer_rule_is_perfect_from_k1():
    rng = np.random.default_rng(4)
    seq = random_sequence(rng)
    axis = axis_of(seq)
    flags = seq == ord("G")
    curve = predictability(axis, flags, seed=0, max_k=3)
    assert [r["k"] for r in curve] == [1, 2, 3] and all(r["auroc"] > 0.999 for r in curve)
    # the class-weighted AUROC equals sklearn on every held-out position, ties included
    flags = (seq == ord("G")) & (rng.random(SIZE) < 0.6) | (rng.random(SIZE) < 0.1)
    fit = split_halves(SIZE, seed=0)
    held = np.flatnonzero(~fit)
    for k, row in zip((1, 2, 3), predictability(axis, flags, seed=0, max_k=3)):
        rates = shrunk_rates(level_counts(axis, flags, k, np.flatnonzero(fit)))
        p = rates[axis.classes(k, held)]
        assert row["auroc"] == pytest.approx(roc_auc_score(flags[held], p), abs=1e-12)
        assert row["log_loss"] == pytest.approx(-np.mean(np.where(flags[held], np.log(p), np.log1p(-p))), rel=1e-9)
    noise = rng.random(SIZE) < 0.3
    curve = predictability(axis, noise, seed=0, max_k=2)
    assert all(abs(r["auroc"] - 0.5) < 0.02 for r in curve)


def test_requested_order_beyond_the_data_falls_back_with_a_message():
    curve = [{"k": k, "log_loss": 1.0 / k} for k in range(1, 9)]
    n = 4**5 * MIN_PER_KMER  # supports k = 5, not 6
    choice = choose_order(curve, n, requested=8)
    assert choice.k == 5 and choice.supported == 5
    assert "k=8" in choice.note and "using k=5" in choice.note
    assert choose_order(curve, n, requested=3).k == 3 and choose_order(curve, n).k == 5
    assert choose_order(curve, 10).k == 0 and "too few" in choose_order(curve, 10).note


def test_short_context_class_near_region_starts_and_ns():
    seq = np.frombuffer(b"ACGTNACGTA", dtype=np.uint8).copy()
    regions = {"c1": (np.array([0]), np.array([10]))}
    axis = SequenceAxis.from_regions(_spaces(regions), [seq])
    assert axis.clean.tolist() == [1, 2, 3, 4, 0, 1, 2, 3, 4, 5]
    cls = axis.classes(2)
    assert cls[0] == 16 and cls[4] == 16 and cls[5] == 16  # short context
    assert cls[1] == 0 * 4 + 1 and cls[9] == 3 * 4 + 0  # "AC" and "TA": most recent base in the low bits


def test_bh_qvalues_match_scipy_and_the_textbook_definition():
    rng = np.random.default_rng(5)
    p = np.r_[rng.random(40) ** 3, np.nan, 0.001, 0.001]
    q = bh_qvalues(p)
    ok = np.isfinite(p)
    assert np.isnan(q[~ok]).all()
    assert np.allclose(q[ok], false_discovery_control(p[ok], method="bh"))
    # textbook: q_(i) = min over j >= i of p_(j) m / j, capped at 1
    finite = p[ok]
    order = np.argsort(finite)
    m = finite.size
    raw = finite[order] * m / np.arange(1, m + 1)
    expected = np.empty(m)
    expected[order] = np.minimum(1, np.minimum.accumulate(raw[::-1])[::-1])
    assert np.allclose(q[ok], expected)
    assert bh_qvalues([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.04, 0.04])


def test_empirical_p_floor_and_bootstrap_interval_cover_the_fold():
    null = np.arange(100)
    assert empirical_p(null, 1_000) == (pytest.approx(1 / 101), pytest.approx(1.0), pytest.approx(2 / 101))
    rng = np.random.default_rng(6)
    obs = rng.poisson(3.0, 500)
    folds = bootstrap_folds(obs, [np.full(500, 2.0), np.full(500, 3.0)], rng, n=500)
    lo, hi = interval(folds[0])
    assert lo < obs.sum() / 1000 < hi and lo > 1.3
    lo, hi = interval(folds[1])
    assert lo < 1 < hi


def test_start_codon_control_compares_annotated_atgs_with_other_atgs():
    rng = np.random.default_rng(7)
    seq = random_sequence(rng)
    starts = feature_starts(rng, 200)
    plant(seq, starts, b"ATG")
    cds = FeatureTable.from_rows([("c1", int(s), int(s) + 90, "+", "CDS", "", f"t{i}", "", 0) for i, s in enumerate(starts)])
    axis = axis_of(seq)
    atg_first = np.flatnonzero((seq[:-2] == ord("A")) & (seq[1:-1] == ord("T")) & (seq[2:] == ord("G")))
    flags = np.zeros(SIZE, bool)
    flags[atg_first] = True  # the router cuts before every ATG: annotated or not
    plus = start_codon_control(flags, cds, axis, _spaces(REGIONS))["strands"]["+"]
    assert plus["annotated"] == 200 and plus["other"] == atg_first.size - 200
    assert plus["rate_annotated"] == pytest.approx(1 / 3) and plus["ratio"] == pytest.approx(1.0, abs=0.03)
    flags[:] = False
    flags[starts] = True  # only annotated starts
    flags[atg_first[::10]] = True
    plus = start_codon_control(flags, cds, axis, _spaces(REGIONS))["strands"]["+"]
    assert plus["ratio_lo"] > 3 and plus["p"] < 1e-6


def test_analyse_boundaries_runs_every_null_and_counts_its_tests():
    rng = np.random.default_rng(8)
    seq = random_sequence(rng)
    starts = feature_starts(rng, 200)
    bset = chunks("stage1", ag_rule(seq, rng, background=0.2))
    result = analyse_boundaries([bset], features_at(starts), REGIONS, window=3, permutations=50,
                                sequence=axis_of(seq), context_k=2, bootstrap=200)
    rows = [r for r in result["enrichment"] if r["stage"] == "stage1"]
    assert {"shift_q", "grid_q", "context_q"} <= set(rows[0]) and rows[0]["context_k"] == 2
    grid_rows = [r for r in result["enrichment"] if r["stage"] != "stage1"]
    assert grid_rows and all("context_p" not in r for r in grid_rows)
    assert result["tests"] == 3 * len(rows) + len(grid_rows)
    assert [r["k"] for r in result["context"]["stage1"]["curve"]] == list(range(1, 9))
    assert result["context"]["stage1"]["curve"][1]["auroc"] > result["context"]["stage1"]["curve"][0]["auroc"] + 0.02


def test_bootstrap_folds_equal_a_loop_over_resampled_units():
    rng = np.random.default_rng(9)
    obs, exp = rng.poisson(2.0, 40).astype(float), rng.random(40) + 1
    fast = bootstrap_folds(obs, [exp], np.random.default_rng(1), n=300)[0]
    idx = np.random.default_rng(1).integers(0, 40, size=(300, 40))  # the same draws, one chunk
    assert np.allclose(fast, obs[idx].sum(axis=1) / exp[idx].sum(axis=1))
    assert np.isnan(bootstrap_folds(obs[:9], [exp[:9]], rng, n=10)[0]).all()  # fewer than 10 units: no interval


def test_context_expectation_equals_a_dictionary_count_of_kmers_outside_the_windows():
    """Reference: count 2-mers (and 1-mers, and all) by string outside the window, shrink as documented."""
    rng = np.random.default_rng(10)
    seq = random_sequence(rng, 3_000)
    regions = {"c1": (np.array([0]), np.array([3_000]))}
    axis = axis_of(seq, regions)
    flags = rng.random(3_000) < np.where(seq == ord("A"), 0.7, 0.2)
    window = np.arange(1_000, 1_200)
    prob, _, _ = ContextModel.fit(axis, flags, 2).expected(window)
    text = seq.tobytes().decode()
    outside = np.setdiff1d(np.arange(3_000), window)
    n0, b0 = outside.size, flags[outside].sum()
    counts = {}
    for i in outside.tolist():
        for k in (1, 2):
            key = text[i - k + 1 : i + 1] if i >= k - 1 else f"short{k}"
            n, b = counts.get(key, (0, 0))
            counts[key] = (n + 1, b + int(flags[i]))
    def rate(key, prior):
        n, b = counts.get(key, (0, 0))
        return (b + PSEUDOCOUNT * prior) / (n + PSEUDOCOUNT)
    for i, p in zip(window.tolist(), prob.tolist()):
        one = rate(text[i], b0 / n0)
        assert p == pytest.approx(rate(text[i - 1 : i + 1], one), rel=1e-12)


def test_no_interval_when_too_few_boundaries_are_expected():
    """20 boundaries over 120 kb: 0 observed at 400 features is no evidence of depletion."""
    rng = np.random.default_rng(11)
    seq = random_sequence(rng)
    starts = feature_starts(rng)
    bset = chunks("stage1", np.sort(rng.choice(np.arange(1, SIZE), 20, replace=False)))
    row, _ = context_row(bset, features_at(starts), seq, k=2, window=2)
    assert row["context_expected"] < 5 and row["units"] >= 10
    for prefix in ("", "context_"):
        assert np.isnan(row[prefix + "fold_lo"]) and np.isnan(row[prefix + "fold_hi"])
