"""Boundary export: BED6 chunks over real sequence, windowed export against one pass.

Windowed routing equals one pass exactly only where the routing's dependence on
the past is finite; the tests pin that down: exactly for fixed-k chunking and, for
the boundary decisions, for a sliding-window attention encoder with context beyond
its reach; and by measured agreement for a Mamba encoder (whose state never
forgets exactly).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnahnet.config import ModelConfig, model_config_from_preset
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.boundaries import export_boundaries, normalise_regions, probs_paths, window_agreement
from dnahnet.infer.model import DnaModel, load
from dnahnet.nn.hnet import HNetLM
from infer_fixtures import GAPPY, SMALL_SIZES, chr22, checkpoints, small_genome, tiny, tiny2  # noqa: F401


def reference_chunks(model: DnaModel, genome, chrom: str, start: int, end: int) -> list[tuple]:
    """The obvious way: one forward pass over the region, then a loop over positions."""
    seq = genome.fetch(chrom, start, end).decode().upper()
    is_n = [c not in "ACGT" for c in seq]
    rows = []
    for sb in model.boundaries(seq):
        starts = [(int(p), float(q)) for p, q in zip(sb.positions, sb.probs) if not is_n[p]]
        for i, (s, p) in enumerate(starts):
            e = starts[i + 1][0] if i + 1 < len(starts) else len(seq)
            e = next((j for j in range(s, e) if is_n[j]), e)
            rows.append((chrom, start + s, start + e, f"stage{sb.stage}", int(np.rint(p * 1000)), "."))
    return sorted(rows, key=lambda r: (r[1], r[3]))


def read_bed(path) -> list[tuple]:
    rows = []
    for line in open(path):
        if line.startswith("track"):
            continue
        f = line.rstrip("\n").split("\t")
        rows.append((f[0], int(f[1]), int(f[2]), f[3], int(f[4]), f[5]))
    return rows


def model_from(config: ModelConfig, seed: int = 0) -> DnaModel:
    torch.manual_seed(seed)
    return DnaModel(HNetLM(config))


def test_single_window_export_equals_one_forward_pass(tiny2, small_genome, tmp_path):
    out = tmp_path / "b.bed"
    summary = export_boundaries(tiny2, small_genome, [("chrA", 0, 4000)], out, window=8000, context=1000)
    assert read_bed(out) == reference_chunks(tiny2, small_genome, "chrA", 0, 4000)
    assert summary.windows == 1 and summary.n_bases > 500


def test_bed_is_sorted_bed6_within_bounds_and_never_covers_n(tiny2, small_genome, tmp_path):
    out, probs = tmp_path / "all.bed", tmp_path / "p.bedGraph"
    summary = export_boundaries(tiny2, small_genome, None, out, probs_bedgraph=probs, window=1024, context=256, track_line=True)
    assert open(out).readline().startswith("track ")
    rows = read_bed(out)
    order = {name: i for i, name in enumerate(small_genome.names)}
    assert rows == sorted(rows, key=lambda r: (order[r[0]], r[1], r[2], r[3]))
    for chrom, s, e, name, score, strand in rows:
        assert 0 <= s < e <= small_genome.sizes[chrom]
        assert name in ("stage1", "stage2") and 0 <= score <= 1000 and strand == "."
        assert "N" not in small_genome.fetch(chrom, s, e).decode().upper()
    assert not [r for r in rows if r[0] == "chrB"]  # all N: no chunks, counted
    assert summary.regions == 3 and summary.regions_all_n == 1 and summary.windows_skipped_all_n >= 2
    assert summary.chunks == [sum(r[3] == "stage1" for r in rows), sum(r[3] == "stage2" for r in rows)]
    # stage-1 chunks tile every non-N base of a region that starts with a boundary (chrC starts at base 0)
    chr_c = [r for r in rows if r[0] == "chrC" and r[3] == "stage1"]
    assert chr_c[0][1] == 0 and chr_c[-1][2] == SMALL_SIZES["chrC"]
    assert all(a[2] == b[1] for a, b in zip(chr_c, chr_c[1:]))
    # every stage-2 chunk starts at a stage-1 chunk start; p bedGraphs, one per stage
    starts1 = {(r[0], r[1]) for r in rows if r[3] == "stage1"}
    assert all((r[0], r[1]) in starts1 for r in rows if r[3] == "stage2")
    stage1_path, stage2_path = probs_paths(probs, 2)
    assert summary.probs == [str(stage1_path), str(stage2_path)]
    p1 = [line.split("\t") for line in open(stage1_path) if not line.startswith("track")]
    p2 = {(f[0], int(f[1])) for f in (line.split("\t") for line in open(stage2_path) if not line.startswith("track"))}
    assert len(p1) == sum(SMALL_SIZES.values()) - summary.n_bases  # every non-N base once
    assert p2 == starts1


def test_windowed_export_is_exact_for_fixed_chunking(small_genome, tmp_path):
    config = model_config_from_preset("tiny-2stage")
    config.chunking, config.k = "every_k", 3
    model = model_from(config)
    single, windowed = tmp_path / "s.bed", tmp_path / "w.bed"
    export_boundaries(model, small_genome, None, single, window=10_000, context=100)
    summary = export_boundaries(model, small_genome, None, windowed, window=500, context=100)
    assert summary.windows > 10
    assert read_bed(windowed) == read_bed(single)


def test_windowed_decisions_are_exact_beyond_a_sliding_window_encoders_reach(small_genome, tmp_path):
    tiny = model_config_from_preset("tiny")
    config = ModelConfig(
        arch_layout=["t2", ["T1"], "m1"], d_model=[32, 48], d_intermediate=[0, 96], ssm_cfg=tiny.ssm_cfg,
        attn_cfg={"num_heads": [2, 2], "rotary_emb_dim": [8, 8], "window_size": [24, -1]},
    )
    model = model_from(config)
    single, windowed = tmp_path / "s.bed", tmp_path / "w.bed"
    export_boundaries(model, small_genome, [("chrC", 0, 3000)], single, window=8000, context=100)
    export_boundaries(model, small_genome, [("chrC", 0, 3000)], windowed, window=400, context=2 * 24 + 8)
    a, b = read_bed(single), read_bed(windowed)
    assert [r[:4] for r in a] == [r[:4] for r in b]  # same chunks; p_t equal up to float rounding
    assert max(abs(x[4] - y[4]) for x, y in zip(a, b)) <= 1


def test_windowed_export_agrees_with_one_pass_for_a_mamba_encoder(tiny2, chr22, write_fasta, data_cache, tmp_path):
    from dnahnet.data.genome import Genome

    genome = Genome(write_fasta({"chr22": chr22(GAPPY[1], GAPPY[1] + 5000)}, "gappy.fa"), cache_dir=data_cache)
    single, windowed = tmp_path / "s.bed", tmp_path / "w.bed"
    export_boundaries(tiny2, genome, None, single, window=10_000, context=100)
    export_boundaries(tiny2, genome, None, windowed, window=1024, context=512)
    a, b = set(r[:4] for r in read_bed(single)), set(r[:4] for r in read_bed(windowed))
    assert len(a) > 1000
    assert len(a & b) / len(a | b) >= 0.99
    for stage in window_agreement(tiny2, chr22(GAPPY[1], GAPPY[1] + 3000), window=1024, context=512):
        assert stage["boundaries"] > 300 and stage["agreement"] >= 0.99 and stage["max_dp"] < 0.01


def test_regions_are_checked_sorted_and_merged(small_genome):
    regions, merged = normalise_regions(small_genome, [("chrC", 100, 200), ("chrA", 50, 80), ("chrC", 150, 300)])
    assert regions == [("chrA", 50, 80), ("chrC", 100, 300)] and merged == 1
    with pytest.raises(DnahnetInputError, match="outside chrA"):
        normalise_regions(small_genome, [("chrA", 0, 4001)])


def test_region_export_reports_genome_coordinates(tiny, small_genome, tmp_path):
    out = tmp_path / "r.bed"
    export_boundaries(tiny, small_genome, [("chrC", 1000, 2500)], out)
    rows = read_bed(out)
    assert rows == reference_chunks(tiny, small_genome, "chrC", 1000, 2500)
    assert rows[0][1] == 1000 and rows[-1][2] == 2500


def test_isotropic_model_has_no_boundaries(checkpoints, small_genome, tmp_path):
    iso = load(checkpoints["iso"], device="cpu")
    with pytest.raises(DnahnetInputError, match="model has no routing stages; it has no boundaries"):
        export_boundaries(iso, small_genome, None, tmp_path / "x.bed")
    with pytest.raises(DnahnetInputError, match="no routing stages"):
        iso.boundaries("ACGT")
    assert not (tmp_path / "x.bed").exists()
