"""The data-efficiency pipeline: multiplier arithmetic and a tiny end-to-end comparison."""

import json
import math

import pytest

from dnahnet.errors import DnahnetInputError
from pipelines.data_efficiency import (
    CompareConfig,
    bases_to_reach,
    data_efficiency_multiplier,
    log_spaced_steps,
    run,
)


def _curve(shift: float):
    bases = [1e4 * 2**i for i in range(12)]
    # A power law in bases; the "H-Net" curve is the baseline's curve reached `shift` times sooner.
    losses = [1.7 + 2.0 * (b * shift) ** -0.3 for b in bases]
    return bases, losses


@pytest.mark.parametrize("shift", [1.0, 2.0, 3.6])
def test_multiplier_recovers_a_known_shift(shift):
    baseline = _curve(1.0)
    hnet = _curve(shift)
    assert math.isclose(data_efficiency_multiplier(baseline, hnet), shift, rel_tol=0.02)


def test_multiplier_is_none_when_the_hnet_never_reaches_the_baseline():
    baseline = _curve(1.0)
    worse = (baseline[0], [x + 0.1 for x in baseline[1]])
    assert data_efficiency_multiplier(baseline, worse) is None


def test_interpolation_is_linear_in_log_bases():
    assert math.isclose(bases_to_reach([100.0, 10000.0], [2.0, 1.0], 1.5), 1000.0)
    assert bases_to_reach([100.0, 1000.0], [2.0, 1.9], 1.0) is None


def test_log_spaced_steps_end_at_the_last_step():
    steps = log_spaced_steps(500, 8)
    assert steps[-1] == 500 and steps == sorted(set(steps)) and steps[0] >= 1
    ratios = [b / a for a, b in zip(steps[1:-1], steps[2:])]
    assert max(ratios) / min(ratios) < 1.6


def test_budget_below_two_steps_is_refused(tmp_path, shared_data):
    cfg = CompareConfig(genome=str(shared_data / "hg19-chr22" / "chr22.fa.gz"), models=["tiny"], bases=100, out=str(tmp_path))
    with pytest.raises(DnahnetInputError, match="two optimiser steps"):
        run(cfg)


def test_unmatched_models_are_refused_with_the_gap(tmp_path):
    from dnahnet.data.demo import demo_genome_path

    cfg = CompareConfig(genome=str(demo_genome_path()), models=["tiny", "cpu-small"], bases=10**6, out=str(tmp_path))
    with pytest.raises(DnahnetInputError, match="not matched in FLOPs"):
        run(cfg)


@pytest.mark.slow
def test_smoke_comparison_runs_end_to_end_and_resumes(tmp_path):
    from dnahnet.data.demo import demo_genome_path

    models = ["tiny", "tiny-transformer"]
    cfg = CompareConfig(genome=str(demo_genome_path()), models=models, bases=4 * 2048, out=str(tmp_path),
                        eval_points=3, seq_len=256, eval_windows=4, allow_unmatched=True)
    results = run(cfg)
    for name in ("results.json", "curves.tsv", "curves.png", "report.md"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["models"]) == set(models)
    assert saved["multipliers"][0]["hnet"] == "tiny" and saved["multipliers"][0]["baseline"] == "tiny-transformer"
    assert 1.0 < saved["baselines"]["markov"]["bits_per_base"] < 2.1
    assert saved["baselines"]["lzma"]["bits_per_base"] > saved["baselines"]["markov"]["bits_per_base"]
    # A rerun reuses the finished curves: same numbers, no retraining.
    again = run(cfg)
    assert again["models"] == results["models"]


def test_classical_baselines_score_the_trainer_held_out_windows():
    from dnahnet.config import DataConfig
    from dnahnet.data.baseline import markov_baseline
    from dnahnet.data.demo import demo_genome_path
    from pipelines.data_efficiency import classical_baselines

    data = DataConfig(genome=[str(demo_genome_path())], seq_len=512, eval_windows=4)
    got = classical_baselines(data)
    markov = markov_baseline(data.genome[0], data, order=None, max_order=10)
    acgt = sum(int((markov.genome.read(w.chrom, w.start, w.end)[0] != ord("N")).sum()) for w in markov.held_out)
    assert got["held_out_bases"] == acgt > 0
    assert got["markov"]["order"] == markov.order and got["markov"]["bits_per_base"] == markov.bits_per_base
    # the fitted model rides along: rescoring the windows gives the reported figure
    assert markov.model.bits_per_base(markov.held_out, markov.genome) == markov.bits_per_base
    assert 1.0 < got["markov"]["bits_per_base"] < got["lzma"]["bits_per_base"] + 0.5
