"""dnahnet_pipelines.scaling: the power-law fit, the compute multiplier and grid checks."""

import numpy as np
import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet_pipelines.scaling import (
    GRIDS,
    Grid,
    PowerLawFit,
    check_grid,
    compute_multiplier,
    family_config,
    fit_loss_floor,
    fit_power_law,
    measured_crossing,
    render_report,
    summarise,
    write_outputs,
)


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
    from dnahnet_pipelines.scaling import ScalingConfig, run

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
    assert "| hnet-1stage-d64 |" in report and "measured multiplier" in report
    ran = json.loads((tmp_path / "s" / "models" / "transformer-d32" / "latest" / "train.json").read_text())["precision_note"]
    assert {p["train_precision"] for p in results["points"]} == {ran} and f"Training precision: {ran}" in report
    assert len(results["crossings"]) == 3 and {c["status"] for c in results["crossings"]} <= {"measured", "beyond", "below"}
    assert (tmp_path / "s" / "scaling.png").stat().st_size > 0
    # a rerun resumes every finished model instead of training it again
    again = run(cfg, command="test")
    assert again["points"] == results["points"]
    assert json.loads((tmp_path / "s" / "results.json").read_text())["command"] == "test"


def _points(family: str, compute, loss) -> list[dict]:
    return [{"family": family, "model": f"{family}-d64", "d_model": 64, "budget": c, "step": i + 1, "train_flops": c,
             "eval_bits_per_base": y} for i, (c, y) in enumerate(zip(compute, loss))]


def test_measured_crossing_interpolates_loss_against_log_compute():
    c, y = [1e12, 2e12, 4e12], [2.0, 1.9, 1.8]
    m = measured_crossing(c, y, 1.85)  # halfway in loss between 2e12 and 4e12: halfway in log compute
    assert m.status == "measured" and m.compute == pytest.approx(2e12 * 2**0.5)
    assert measured_crossing(c, y, 1.9).compute == pytest.approx(2e12)  # on a measured point
    assert measured_crossing(list(reversed(c)), list(reversed(y)), 1.95).compute == pytest.approx(1e12 * 2**0.5)  # order-free
    beyond = measured_crossing(c, y, 1.75)
    assert beyond.status == "beyond" and beyond.compute is None and beyond.bound == 4e12
    below = measured_crossing(c, y, 2.1)
    assert below.status == "below" and below.compute is None and below.bound == 1e12
    # a non-monotone curve: the first time it reaches the target
    assert measured_crossing([1e12, 2e12, 4e12, 8e12], [2.0, 1.8, 1.85, 1.7], 1.82).compute == pytest.approx(1e12 * 2**0.9)


def test_measured_multiplier_in_the_report_is_read_off_the_points():
    c = [1e12, 2e12, 4e12]
    points = _points("hnet-1stage", c, [1.95, 1.90, 1.85]) + _points("transformer", c, [2.0, 1.9, 1.8])
    results = {"genome": "g.fa", "date": "2026-12-01", "points": points, **summarise(points, ["hnet-1stage", "transformer"], n_boot=50)}
    by_budget = {e["budget"]: e for e in results["crossings"]}
    # H-Net at 2e12 has 1.90 = the Transformer at 2e12: 1.00x; at 4e12 (1.85): sqrt(2) * 2e12 / 4e12
    assert by_budget[2e12]["status"] == "measured" and by_budget[2e12]["multiplier"] == pytest.approx(1.0)
    assert by_budget[4e12]["multiplier"] == pytest.approx(2**0.5 / 2)
    assert by_budget[1e12]["status"] == "measured" and by_budget[1e12]["multiplier"] == pytest.approx(2**0.5)
    assert all(e["extrapolated"] is None for e in results["crossings"])
    report = render_report(results)
    assert "| hnet-1stage | 4e+12 | 1.8500 | transformer | 0.71x (reached at 2.83e+12 FLOPs) |" in report
    assert "extrapolated" not in report.lower().replace("extrapolated beyond", "")


def test_report_refuses_to_print_an_unmarked_extrapolation(tmp_path):
    c = np.array([1e12, 2e12, 4e12])
    hnet = [1.80, 1.78, 1.76]  # below every Transformer point: every crossing lies beyond its largest budget
    base = [2.0, 1.951, 1.899]
    points = _points("hnet-2stage", c, hnet) + _points("transformer", c, base)
    results = {"genome": "g.fa", "date": "2026-12-01", "points": points, **summarise(points, ["hnet-2stage", "transformer"], n_boot=200)}
    assert [e["status"] for e in results["crossings"]] == ["beyond"] * 3
    for e in results["crossings"]:
        assert e["multiplier"] is None and e["bound"] == pytest.approx(4e12 / e["hnet_flops"])
        x = e["extrapolated"]
        assert x["fit"] == "power law" and x["multiplier"] > e["bound"] and x["n_boot"] == 200
        lo, hi = x["interval"]
        assert lo <= x["multiplier"] and (hi is None or hi >= x["multiplier"])
    report = render_report(results)
    for e in results["crossings"]:
        value = f"{e['extrapolated']['multiplier']:.2f}x"
        lines = [line for line in report.splitlines() if value in line]
        assert lines and all("extrapolated" in line for line in lines), lines
    measured = report.split("## Compute multipliers, measured")[1].split("## Extrapolated")[0]
    assert measured.count("| > ") == 3 and "extrapolated (" not in measured
    # a results set claiming a crossing past the measured budgets as measured is refused before anything is written
    forged = json_copy(results)
    forged["crossings"][0].update(status="measured", baseline_flops=forged["crossings"][0]["extrapolated"]["multiplier"] * 1e12,
                                  multiplier=forged["crossings"][0]["extrapolated"]["multiplier"])
    with pytest.raises(ValueError, match="inside the baseline's measured compute"):
        render_report(forged)
    bare = json_copy(results)
    bare["crossings"][0]["multiplier"] = 5.0  # a number without a measured crossing
    with pytest.raises(ValueError, match="cannot carry an unmarked multiplier"):
        write_outputs(tmp_path, bare)
    assert list(tmp_path.iterdir()) == []


def json_copy(obj):
    import json

    return json.loads(json.dumps(obj))


def test_loss_floor_fit_needs_four_budgets_and_recovers_the_floor():
    c = np.geomspace(1e12, 1e15, 6)
    rng = np.random.default_rng(0)
    loss = 1.5 + 0.4 * (c / 1e12) ** -0.3 + rng.normal(0, 1e-4, c.size)
    fit = fit_loss_floor(c, loss)
    assert fit.E == pytest.approx(1.5, abs=0.01) and fit.b == pytest.approx(0.3, abs=0.03)
    assert fit.E_ci[0] < 1.5 < fit.E_ci[1] and fit.r2 > 0.999
    assert fit.compute_for(1.49) == float("inf")  # below the floor: never reached
    assert fit.compute_for(fit.loss_at(3e13)) == pytest.approx(3e13, rel=1e-6)
    with pytest.raises(DnahnetInputError, match="needs at least 4 budgets, got 3"):
        fit_loss_floor(c[:3], loss[:3])
    # in a summary: fitted with >= 4 budgets, and an extrapolation below its floor is "never"
    points = _points("hnet-1stage", c, loss - 0.2) + _points("mamba2", c, loss)
    s = summarise(points, ["hnet-1stage", "mamba2"], n_boot=20)
    assert s["floor_fits"]["mamba2"]["E"] == pytest.approx(1.5, abs=0.01)
    never = [e for e in s["crossings"] if e["hnet_loss"] < 1.5]
    assert never and all(e["status"] == "beyond" and e["extrapolated"]["fit"] == "loss floor"
                         and e["extrapolated"]["multiplier"] is None for e in never)
    three = summarise(points[:3] + points[6:9], ["hnet-1stage", "mamba2"], n_boot=20)
    assert "needs at least 4" in three["floor_fits"]["mamba2"]["not_fitted"]


def test_report_only_rerenders_the_committed_results_without_training(tmp_path, capsys):
    import json
    import shutil
    from pathlib import Path

    from dnahnet_pipelines.scaling import main

    committed = Path(__file__).resolve().parents[1] / "pipelines" / "results" / "scaling" / "results.json"
    shutil.copy(committed, tmp_path / "results.json")
    assert main(["--report-only", "--out", str(tmp_path), "--n-boot", "50"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert "models" not in {p.name for p in tmp_path.iterdir()}  # nothing trained
    assert results["points"] == json.loads(committed.read_text())["points"]
    by = {(e["hnet"], e["baseline"], e["budget"]): e for e in results["crossings"]}
    # H-Net 1-stage at 1e12 (1.9348) is already below every Transformer point up to 4e12 (best 1.9496)
    assert by[("hnet-1stage", "transformer", 1e12)]["status"] == "beyond"
    assert by[("hnet-1stage", "transformer", 4e12)]["multiplier"] is None
    report = (tmp_path / "report.md").read_text()
    assert "1.92x" not in report and "--report-only" in report
    # a grid from before precisions were recorded does not claim an fp32 readout
    assert "Training precision: not recorded" in report and "scored in the training precision" in report
    assert main(["--report-only", "--out", str(tmp_path / "none")]) == 2
    assert "no results.json" in capsys.readouterr().err
