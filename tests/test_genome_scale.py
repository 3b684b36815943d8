"""Genome-scale runs: shards over processes give the same bytes, restarts finish what was cut, bad runs exit 2.

The genome is three real-sequence contigs made in the test: chrA with assembly
gaps, chrB all N, chrC N-free (tests/infer_fixtures.py `small_genome`). Shards
are made small (--shard-bases 600, windows of 512) so each contig has several.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from dnahnet.distributed import DistEnv
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.boundaries import export_boundaries
from dnahnet.infer.scoring import score_regions
from dnahnet.infer.sharding import Region, plan_shards, select_regions
from dnahnet_cli.main import main
from infer_fixtures import SMALL_SIZES, checkpoints, chr22, small_genome, tiny, tiny2  # noqa: F401
from multiprocess import arm_rank_deadline, free_port, retry_if_stalled, single_host_env, spawn

SHARDING = ["--window", "512", "--context", "128", "--shard-bases", "600", "--batch-size", "3"]


def boundaries_args(ck, genome, out, *extra) -> list[str]:
    return ["boundaries", "--checkpoint", str(ck), "--genome", str(genome.path), "--out", str(out / "chunks.bed"),
            "--probs", str(out / "p.bedGraph"), *SHARDING, *extra]


def score_args(ck, genome, out, *extra) -> list[str]:
    return ["score", "--checkpoint", str(ck), "--genome", str(genome.path), "--out", str(out / "scores.tsv"),
            "--per-base", str(out / "bits.bedGraph"), "--rc", *SHARDING, *extra]


def _rank(rank: int, world: int, ports: list[int], commands: list[list[str]], cache: str) -> None:
    """One process of a torchrun-like launch: the same environment, then each command in turn."""
    import torch

    arm_rank_deadline()
    torch.set_num_threads(1)
    os.environ["DNAHNET_CACHE"] = cache
    for port, argv in zip(ports, commands):
        os.environ.update(single_host_env(rank, world, port))
        code = main(argv)
        if code != 0:
            raise SystemExit(f"rank {rank}: {argv[0]} exited {code}")


def launch(commands: list[list[str]], tmp_path, outputs: list, nproc: int = 2) -> None:
    """What `torchrun --nproc-per-node 2 -m dnahnet_cli ...` does, for several commands in one launch that
    write into the folders `outputs`."""
    def once() -> None:
        ports = [free_port() for _ in commands]
        spawn(_rank, args=(nproc, ports, commands, str(tmp_path / "cache")), nprocs=nproc)

    retry_if_stalled(once, outputs=outputs)


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def bed_rows(path) -> list[tuple]:
    rows = []
    for line in open(path):
        if not line.startswith("track"):
            f = line.rstrip("\n").split("\t")
            rows.append((f[0], int(f[1]), int(f[2]), *f[3:]))
    return rows


@pytest.mark.slow  # two process launches: ~15 s on an idle 2-core machine, more under load
def test_two_processes_write_the_same_bytes_as_one(capsys, checkpoints, small_genome, tmp_path):
    """2 gloo CPU processes (as torchrun starts them) against one process, for boundaries and score, byte for byte."""
    one, two = tmp_path / "one", tmp_path / "two"
    for out in (one, two):
        out.mkdir()
    assert main(boundaries_args(checkpoints["tiny2"], small_genome, one)) == 0
    err = capsys.readouterr().err
    assert "3 regions" in err and "1 all-N regions" in err and "0 reused" in err
    assert "boundaries: 9,000 / 9,000 bases (100%)" in err  # progress: the log line at the end (not a terminal)
    assert main(score_args(checkpoints["tiny"], small_genome, one)) == 0
    assert "score: 9,000 / 9,000 bases (100%)" in capsys.readouterr().err
    launch([boundaries_args(checkpoints["tiny2"], small_genome, two),
            score_args(checkpoints["tiny"], small_genome, two)], tmp_path, outputs=[two])
    assert files(two) == files(one)
    assert set(files(one)) == {"chunks.bed", "p.bedGraph", "p.stage2.bedGraph", "scores.tsv", "bits.bedGraph"}
    assert not [p for p in one.iterdir() if p.name.endswith(".parts")]  # parts removed after the merge

    # chunks: sorted in FASTA order, inside their contigs, never over an N; the all-N contig has none
    rows = bed_rows(one / "chunks.bed")
    order = {name: i for i, name in enumerate(small_genome.names)}
    assert rows == sorted(rows, key=lambda r: (order[r[0]], r[1], r[3]))
    assert all(0 <= s < e <= SMALL_SIZES[c] for c, s, e, *_ in rows)
    assert all("N" not in small_genome.fetch(c, s, e).decode().upper() for c, s, e, *_ in rows)
    assert {r[0] for r in rows} == {"chrA", "chrC"}
    table = [line.split("\t") for line in open(one / "scores.tsv") if not line.startswith(("#", "name"))]
    assert [r[0] for r in table] == ["chrA", "chrB", "chrC"]
    assert table[1][2:4] == ["2000", "0"] and table[1][7].strip() == "all N (skipped)"


def test_shards_across_a_region_give_the_chunks_of_one_export(tiny2, small_genome, tmp_path):
    """Shard boundaries are invisible: tiny shards write the same BED as shards the size of a contig."""
    whole, sharded = tmp_path / "whole.bed", tmp_path / "sharded.bed"
    a = export_boundaries(tiny2, small_genome, None, whole, window=512, context=128, shard_bases=10_000)
    b = export_boundaries(tiny2, small_genome, None, sharded, window=512, context=128, shard_bases=1)
    assert a.shards == 3 and b.shards == b.windows > 10
    assert whole.read_bytes() == sharded.read_bytes()
    assert a.chunks == b.chunks and b.regions_all_n == 1 and b.windows_skipped_all_n >= 4


class Interrupted(Exception):
    pass


def stop_after(k: int):
    """A progress hook that kills the run after k shards (as a crash or Ctrl-C would)."""
    import contextlib

    @contextlib.contextmanager
    def factory(total):
        done = [0]

        def advance(n):
            done[0] += 1
            if done[0] >= k:
                raise Interrupted

        yield advance

    return factory


def test_an_interrupted_run_restarts_where_it_stopped_with_the_same_bytes(tiny2, tiny, small_genome, tmp_path):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    ref.mkdir(), cut.mkdir()
    kw = dict(window=512, context=128, shard_bases=600)
    export_boundaries(tiny2, small_genome, None, ref / "b.bed", ref / "p.bedGraph", **kw)
    with pytest.raises(Interrupted):
        export_boundaries(tiny2, small_genome, None, cut / "b.bed", cut / "p.bedGraph", progress=stop_after(5), **kw)
    parts = cut / "b.bed.parts"
    done = sorted(p.name for p in parts.iterdir() if p.is_dir())
    assert len(done) == 5 and not (cut / "b.bed").exists()  # nothing at a final path
    (parts / done[2]).rename(parts / ".gone")  # a lost part is simply computed again
    import shutil

    shutil.rmtree(parts / ".gone")
    summary = export_boundaries(tiny2, small_genome, None, cut / "b.bed", cut / "p.bedGraph", **kw)
    assert summary.shards_reused == 4 and summary.shards_computed == summary.shards - 4
    assert files(cut) == files(ref) and not parts.exists()

    regions = select_regions(small_genome)
    score_regions(tiny, small_genome, regions, ref / "s.tsv", ref / "s.bedGraph", **kw)
    with pytest.raises(Interrupted):
        score_regions(tiny, small_genome, regions, cut / "s.tsv", cut / "s.bedGraph", progress=stop_after(3), **kw)
    summary = score_regions(tiny, small_genome, regions, cut / "s.tsv", cut / "s.bedGraph", **kw)
    assert summary.shards_reused == 3 and files(cut) == files(ref)


def test_a_restart_with_other_options_is_refused_naming_the_option(capsys, checkpoints, small_genome, tmp_path,
                                                                    monkeypatch):
    import dnahnet.infer.sharding as sharding

    real = sharding.run_sharded

    def crash_after_parts(shards, store, env, compute, merge, advance=lambda n: None):
        return real(shards, store, env, compute, lambda: (_ for _ in ()).throw(Interrupted()), advance)

    monkeypatch.setattr("dnahnet.infer.boundaries.run_sharded", crash_after_parts)
    with pytest.raises(Interrupted):
        main(boundaries_args(checkpoints["tiny2"], small_genome, tmp_path))
    monkeypatch.undo()
    capsys.readouterr()
    argv = boundaries_args(checkpoints["tiny2"], small_genome, tmp_path)
    argv[argv.index("--window") + 1] = "640"
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "restart with different options" in lines[0] and "--window was 512, now 640" in lines[0]
    assert not (tmp_path / "chunks.bed").exists() and not (tmp_path / "p.bedGraph").exists()
    assert main(boundaries_args(checkpoints["tiny2"], small_genome, tmp_path)) == 0  # the original command finishes
    assert "reused from an interrupted run" in capsys.readouterr().err


def one_line_error(capsys, argv: list[str], *needles: str) -> None:
    code = main([str(a) for a in argv])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("dnahnet: error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_genome_scale_inputs_exit_2_with_one_line(capsys, checkpoints, small_genome, tmp_path):
    ck, g = checkpoints["tiny2"], small_genome.path
    out = tmp_path / "o.bed"
    base = ["boundaries", "--checkpoint", ck, "--genome", g, "--out", out]
    one_line_error(capsys, [*base, "--contigs", "chrA,1,2"], "2 contig name(s) not in the genome: 1, 2",
                   "the genome has chrA, chrB, chrC")
    bed = tmp_path / "ens.bed"
    bed.write_text("1\t0\t100\nchrA\t0\t10\n2\t5\t50\n")
    one_line_error(capsys, [*base, "--bed", bed], "ens.bed", "not in the genome: 1, 2")
    bed.write_text("chrA\t0\t100\nchrC\t2900\t3100\n")
    one_line_error(capsys, [*base, "--bed", bed], "line 2", "outside chrC")
    one_line_error(capsys, [*base, "--region", "chrC:2,901-3,100"], "outside chrC")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(capsys, ["boundaries", "--checkpoint", ck, "--genome", g, "--out", blocker / "sub" / "o.bed"],
                   "cannot create output folder")
    one_line_error(capsys, ["score", "--checkpoint", checkpoints["tiny"], "--genome", g, "--out", tmp_path / "s.tsv",
                            "--per-base", tmp_path / "p.bw", "--region", "chrC", "--region", "chrA"], "bigWig needs sorted")
    assert not out.exists() and not list(tmp_path.glob("*.parts"))
    with pytest.raises(DnahnetInputError, match="world size 99 is larger than the number of shards"):
        export_boundaries(load_cpu(ck), small_genome, [("chrA", 0, 1000)], tmp_path / "w.bed",
                          env=DistEnv(rank=0, world_size=99))
    assert not (tmp_path / "w.bed").exists()


def load_cpu(ck):
    from dnahnet.infer.model import load

    return load(ck, device="cpu")


def test_shard_plan_tiles_every_region_once():
    regions = [Region("a", 0, 5000, "a"), Region("b", 100, 150, "b"), Region("c", 0, 0, "c")]
    shards = plan_shards(regions, window=512, context=128, shard_bases=1000)
    for r, region in enumerate(regions[:2]):
        mine = [s for s in shards if s.region == r]
        assert mine[0].a == 0 and mine[-1].b == region.length
        assert all(x.b == y.a for x, y in zip(mine, mine[1:]))
    assert [s.index for s in shards] == list(range(len(shards))) and not [s for s in shards if s.region == 2]
    assert np.mean([s.bases for s in shards if s.region == 0]) > 700


def test_regions_come_from_contigs_regions_bed_or_the_whole_genome(small_genome, tmp_path):
    assert [(r.chrom, r.start, r.end) for r in select_regions(small_genome)] == \
        [("chrA", 0, 4000), ("chrB", 0, 2000), ("chrC", 0, 3000)]
    assert [r.name for r in select_regions(small_genome, contigs=["chrC,chrA"])] == ["chrC", "chrA"]
    assert select_regions(small_genome, regions=["chrC:1,001-2,000"]) == [Region("chrC", 1000, 2000, "chrC:1,001-2,000")]
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\nchrC\t10\t20\tgeneX\nchrA\t0\t5\n")
    assert select_regions(small_genome, bed=bed) == [Region("chrC", 10, 20, "geneX"), Region("chrA", 0, 5, "chrA:0-5")]
    with pytest.raises(DnahnetInputError, match="give one of --region, --bed or --contigs"):
        select_regions(small_genome, regions=["chrA"], contigs=["chrC"])
