"""The multiplier statistics on synthetic curves with a known shift: point value, interval coverage, wording."""

import math

import numpy as np
import pytest

from dnahnet.analysis.multiplier import (
    ONE_SEED,
    bootstrap_weights,
    describe_multiplier,
    loss_estimate,
    monotone,
    multiplier_estimate,
    readout_multiplier,
)

BASES = np.array([2e4, 5e4, 1e5, 2e5, 3e5, 4e5, 5e5, 6e5, 7e5, 8e5])
READOUT = 8e5


def _truth(bases, shift):
    """Expected held-out loss after `bases`: the baseline's power law reached `shift` times sooner."""
    return 1.7 + 20.0 * (bases * shift) ** -0.35


def _draw(rng, shift, seeds=3, windows=200, seed_sd=0.004, window_sd=0.25, noise_sd=0.05):
    """Per-window bit sums (seeds, points, windows) of an H-Net and a baseline and the window counts.

    Window difficulty is shared by both models (the same held-out windows); each (model, seed) has its
    own offset (init and data order); each (model, seed, point, window) its own noise.
    """
    counts = np.full(windows, 1000.0)
    difficulty = rng.normal(0, window_sd, windows)
    out = []
    for s in (shift, 1.0):
        mean = _truth(BASES, s)[None, :, None] + difficulty[None, None, :]
        mean = mean + rng.normal(0, seed_sd, (seeds, 1, 1))
        per_base = mean + rng.normal(0, noise_sd, (seeds, len(BASES), windows))
        out.append(per_base * counts)
    return out[0], out[1], counts


@pytest.mark.parametrize("shift", [1.0, 2.5])
def test_interval_covers_the_true_shift_at_the_nominal_rate(shift):
    rng = np.random.default_rng(int(shift * 10))
    weights = bootstrap_weights(200, 100, seed=1)
    covered = 0
    for _ in range(100):
        h, b, counts = _draw(rng, shift)
        est = multiplier_estimate(BASES, h, b, counts, READOUT, weights=weights)
        covered += est.contains(shift)
    assert covered >= 90, covered


def test_the_point_estimate_recovers_a_noise_free_shift():
    for shift in (1.0, 1.6, 3.0):
        m, bound = readout_multiplier(BASES, _truth(BASES, shift), _truth(BASES, 1.0), READOUT)
        assert math.isclose(m, shift, rel_tol=0.03) and bound == ""


def test_a_worse_hnet_gets_a_multiplier_below_one():
    m, _ = readout_multiplier(BASES, _truth(BASES, 0.5), _truth(BASES, 1.0), READOUT)
    assert math.isclose(m, 0.5, rel_tol=0.03)


def test_a_crossing_before_the_first_point_is_a_bound():
    m, bound = readout_multiplier(BASES, _truth(BASES, 100.0), _truth(BASES, 1.0), READOUT)
    assert bound == ">=" and math.isclose(m, READOUT / BASES[0])


def test_a_later_readout_ignores_the_points_after_it():
    # after the readout the H-Net's curve collapses; the pre-readout multiplier must not see it
    h = _truth(BASES, 2.0)
    h[-3:] -= 0.5
    m, _ = readout_multiplier(BASES, h, _truth(BASES, 1.0), 5e5)
    assert math.isclose(m, 2.0, rel_tol=0.03)


def test_monotone_smoothing_removes_a_noisy_dip():
    smoothed = monotone(np.array([2.0, 1.9, 1.7, 1.8, 1.6]))
    assert np.all(np.diff(smoothed) <= 1e-12) and math.isclose(smoothed[2], 1.75)


def test_one_seed_has_no_interval_and_says_so():
    rng = np.random.default_rng(0)
    h, b, counts = _draw(rng, 2.0, seeds=1)
    est = multiplier_estimate(BASES, h, b, counts, READOUT, weights=bootstrap_weights(200, 50))
    assert not est.has_interval and est.to_dict()["interval"] == ONE_SEED
    assert ONE_SEED in describe_multiplier(est)


def test_an_interval_containing_one_says_no_detectable_difference():
    rng = np.random.default_rng(3)
    h, b, counts = _draw(rng, 1.0, seed_sd=0.01)
    est = multiplier_estimate(BASES, h, b, counts, READOUT, weights=bootstrap_weights(200, 100))
    assert est.contains(1.0) and "no detectable difference" in describe_multiplier(est)


def test_loss_interval_covers_the_true_mean():
    rng = np.random.default_rng(5)
    weights = bootstrap_weights(200, 100, seed=2)
    covered = 0
    for _ in range(100):
        h, _, counts = _draw(rng, 1.0)
        # the truth on the population of windows: the curve's mean (window difficulty has mean 0)
        covered += loss_estimate(h, counts, len(BASES) - 1, weights=weights).contains(float(_truth(BASES, 1.0)[-1]))
    assert covered >= 90, covered
