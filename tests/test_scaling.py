"""pipelines.scaling: the power-law fit, the compute multiplier and grid checks."""

import numpy as np
import pytest

from dnahnet.errors import DnahnetInputError
from pipelines.scaling import GRIDS, Grid, PowerLawFit, check_grid, compute_multiplier, family_config, fit_power_law


def test_fit_recovers_the_exponent_of_synthetic_data():
    rng = np.random.default_rng(0)
    c = np.geomspace(1e12, 1e16, 8)
    loss = 7.0 * c ** -0.05 * np.exp(rng.normal(0, 0.002, c.size))
    fit = fit_power_law(c, loss)
    assert fit.b == pytest.approx(0.05, abs=0.003)
    assert fit.b_ci[0] < 0.05 < fit.b_ci[1] and fit.b_ci[1] - fit.b_ci[0] < 0.01
    assert fit.a == pytest.approx(7.0, rel=0.1) and fit.r2 > 0.99


def test_exact_power_law_is_fitted_exactly():
    c = np.array([1e12, 1e13, 1e14])
    fit = fit_power_law(c, 3.0 * c ** -0.1)
    assert fit.b == pytest.approx(0.1) and fit.b_stderr < 1e-6


def test_compute_multiplier_of_a_shifted_baseline():
    hnet = PowerLawFit(a=2.0, b=0.1, b_stderr=0, b_ci=(0.1, 0.1), r2=1, n=3)
    # the baseline needs 4x the compute for any loss: a_b * (4C)^-b = a_h * C^-b
    base = PowerLawFit(a=2.0 * 4**0.1, b=0.1, b_stderr=0, b_ci=(0.1, 0.1), r2=1, n=3)
    assert compute_multiplier(hnet, base, 1e15) == pytest.approx(4.0)


def test_fewer_than_three_points_or_budgets_are_input_errors():
    with pytest.raises(DnahnetInputError, match="at least three"):
        fit_power_law([1e12, 1e13], [2.0, 1.9])
    grid = Grid(sizes={"transformer": [64], "mamba2": [64]}, budgets={"transformer": [1e12, 2e12, 4e12], "mamba2": [1e12, 2e12]})
    with pytest.raises(DnahnetInputError, match="family mamba2 has 2 compute budget"):
        check_grid(grid)


def test_bundled_grids_are_valid():
    for grid in GRIDS.values():
        check_grid(grid)
        for family, sizes in grid.sizes.items():
            for d in sizes:
                family_config(family, d, grid.depth).validate()


def test_tiny_grid_end_to_end_writes_fits_tables_and_resumes(tmp_path):
    import json

    from dnahnet.data.demo import demo_genome_path
    from pipelines.scaling import ScalingConfig, run

    grid = Grid(sizes={"hnet-1stage": [32, 64], "transformer": [32]},
                budgets={"hnet-1stage": [2e8, 4e8, 8e8], "transformer": [2e8, 4e8, 8e8]},
                seq_len=64, tokens_per_step=256, micro_batch_size=4, warmup_steps=2, eval_windows=4, depth=1)
    cfg = ScalingConfig(genome=str(demo_genome_path()), out=str(tmp_path / "s"), grid=grid)
    results = run(cfg, command="test")
    assert set(results["fits"]) == {"hnet-1stage", "transformer"}
    assert len(results["points"]) == 3 * 3 and all(p["eval_bits_per_base"] > 0 for p in results["points"])
    for family, front in results["frontier"].items():
        assert [p["budget"] for p in front] == [2e8, 4e8, 8e8]
        for p in front:  # the frontier point is the best model of the family at that budget
            same = [q["eval_bits_per_base"] for q in results["points"] if q["family"] == family and q["budget"] == p["budget"]]
            assert p["eval_bits_per_base"] == min(same)
    report = (tmp_path / "s" / "report.md").read_text()
    assert "| hnet-1stage-d64 |" in report and "compute multiplier" in report
    assert (tmp_path / "s" / "scaling.png").stat().st_size > 0
    # a rerun resumes every finished model instead of training it again
    again = run(cfg, command="test")
    assert again["points"] == results["points"]
    assert json.loads((tmp_path / "s" / "results.json").read_text())["command"] == "test"
