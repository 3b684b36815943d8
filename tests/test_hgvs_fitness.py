"""HGVS c. edits reproduce hand-worked mutants; fitness statistics equal scipy; unsupported variants are listed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dnahnet.zeroshot.fitness import aa_changes, nonsyn_codons, run_fitness, summarize, prepare, VariantRow
from dnahnet.zeroshot.hgvs import HgvsError, mutate, parse_hgvs
from dnahnet.zeroshot.stats import partial_spearman, spearman

#          c.1   4   7   10  13  16
WT = "ATGAAACCCGGGTTTTAA"  # M K P G F *


@pytest.mark.parametrize("hgvs, mutant", [
    ("c.4A>G", "ATGGAACCCGGGTTTTAA"),
    ("c.10_12del", "ATGAAACCCTTTTAA"),
    ("c.10_12delGGG", "ATGAAACCCTTTTAA"),
    ("c.11del", "ATGAAACCCGGTTTTAA"),
    ("c.3_4insTT", "ATGTTAAACCCGGGTTTTAA"),
    ("c.4_6delinsC", "ATGCCCCGGGTTTTAA"),
    ("c.5delinsTG", "ATGATGACCCGGGTTTTAA"),
    ("c.4_6dup", "ATGAAAAAACCCGGGTTTTAA"),
    ("c.[4A>G;10_12del]", "ATGGAACCCTTTTAA"),
    ("c.[1A>T;7_9delinsGG;12_13insA]", "TTGAAAGGGGGATTTTAA"),
    ("NM_0001.1:c.=", WT),
])
def test_hgvs_edits_reproduce_hand_worked_mutants(hgvs, mutant):
    assert mutate(WT, hgvs) == mutant


@pytest.mark.parametrize("hgvs, reason", [
    ("c.10+1G>A", "unsupported"), ("c.-5A>G", "unsupported"), ("c.*3del", "unsupported"), ("p.K2E", "coding-DNA"),
    ("c.4C>G", "reference has"), ("c.[4A>G;4_5del]", "overlap"), ("c.20del", "outside"), ("c.4_6insA", "adjacent"),
    ("c.[4A>G];[5A>G]", "allele"), ("c.10_12delAAA", "reference has"),
])
def test_unsupported_or_inconsistent_hgvs_raise_with_a_reason(hgvs, reason):
    with pytest.raises(HgvsError, match=reason):
        mutate(WT, hgvs)


def test_baselines_count_amino_acid_and_nonsynonymous_codon_changes():
    assert aa_changes(WT, mutate(WT, "c.4A>G")) == nonsyn_codons(WT, mutate(WT, "c.4A>G")) == 1  # K>E
    assert aa_changes(WT, mutate(WT, "c.6A>G")) == 0  # AAA>AAG, K>K synonymous
    # premature stop at codon 2 (AAA>TAA): the protein loses K P G F -> 4 changes; one codon changed
    assert aa_changes(WT, mutate(WT, "c.4A>T")) == 4 and nonsyn_codons(WT, mutate(WT, "c.4A>T")) == 1


def test_spearman_and_partial_equal_scipy_and_pingouin_formula():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x, z = rng.normal(size=40), rng.normal(size=40)
    y = np.round(x + z + rng.normal(size=40), 1)
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    # partial Spearman = Pearson correlation of the rank residuals after regressing out rank(z)
    from scipy.stats import rankdata

    rx, ry, rz = rankdata(x), rankdata(y), rankdata(z)
    A = np.c_[np.ones(40), rz]
    res = lambda v: v - A @ np.linalg.lstsq(A, v, rcond=None)[0]  # noqa: E731
    assert partial_spearman(x, y, z) == pytest.approx(np.corrcoef(res(rx), res(ry))[0, 1], abs=1e-10)


def test_summary_statistics_per_assay_macro_and_pooled():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    rows = []
    for assay in ("A", "B"):
        for i in range(12):
            r = VariantRow(assay, "wt", f"v{i}", fitness=float(rng.normal()))
            r.mutant, r.score = "X", float(rng.normal())
            r.baselines = {"aa_changes": -float(rng.integers(0, 3)), "nonsyn_codons": -float(rng.integers(0, 3))}
            rows.append(r)
    s = summarize(rows)
    per = [spearmanr([r.score for r in rows if r.assay == a], [r.fitness for r in rows if r.assay == a]).statistic for a in "AB"]
    assert s["per_assay"]["A"]["model"] == pytest.approx(per[0]) and s["methods"]["model"]["macro_rho"] == pytest.approx(np.mean(per))
    assert s["methods"]["model"]["macro_abs_rho"] == pytest.approx(np.mean(np.abs(per)))
    assert s["methods"]["model"]["pooled_rho"] == pytest.approx(spearmanr([r.score for r in rows], [r.fitness for r in rows]).statistic)
    assert s["partial"]["given"] in ("aa_changes", "nonsyn_codons")


def test_run_fitness_scores_and_lists_unsupported(tmp_path):
    import torch

    from dnahnet.config import model_config_from_preset
    from dnahnet.infer.model import load
    from dnahnet.nn.hnet import HNetLM
    from dnahnet.io.checkpoint import save_model

    torch.manual_seed(0)
    save_model(tmp_path / "ck", HNetLM(model_config_from_preset("tiny")))
    model = load(tmp_path / "ck", device="cpu")
    ref = tmp_path / "cds.fa"
    ref.write_text(">geneA\n" + WT * 3 + "\n")
    variants = tmp_path / "v.tsv"
    good = ["c.4A>G", "c.10_12del", "c.[4A>G;10_12del]", "c.5delinsTG", "c.6A>G", "c.4A>T"]
    variants.write_text("assay\thgvs\tfitness\n" + "".join(f"geneA\t{h}\t{i * 0.5}\n" for i, h in enumerate(good))
                        + "geneA\tc.10+1G>A\t0.1\ngeneA\tc.4C>G\t0.2\n")
    s = run_fitness(model, ref, variants, tmp_path / "out")
    assert s["variants"] == 8 and s["scored"] == 6 and s["unsupported"] == 2
    lines = (tmp_path / "out" / "variants.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:5] == ["assay", "reference", "hgvs", "fitness", "score_bits"] and len(lines) == 9
    unsupported = (tmp_path / "out" / "unsupported.tsv").read_text()
    assert "c.10+1G>A" in unsupported and "c.4C>G" in unsupported
    # the score is log2 p(mutant) - log2 p(WT), recomputed here
    wt = (WT * 3)
    mut = mutate(wt, "c.4A>G")
    lp = [float(np.nansum(x)) for x in model.score([wt, mut])]
    row = next(ln.split("\t") for ln in lines[1:] if ln.split("\t")[2] == "c.4A>G")
    assert float(row[4]) == pytest.approx(lp[1] - lp[0], abs=1e-3)
    assert set(json.loads((tmp_path / "out" / "summary.json").read_text())["stats"]["methods"]) == {"model", "aa_changes", "nonsyn_codons"}
