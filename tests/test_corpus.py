"""Multi-genome corpora: manifests, GenBank genomes, whole-genome splits, per-genome sampling weights."""

from __future__ import annotations


import numpy as np
import pytest

from dnahnet.config import DataConfig, TrainConfig
from dnahnet.data.corpus import CorpusSampler, GenomeCorpus, genome_splits, resolve_genomes
from dnahnet.errors import DnahnetInputError
from shared_paths import SHARED_DATA

DATA = SHARED_DATA
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data folder not found: {DATA} (set DNAHNET_SHARED_DATA)")
LEPTO = DATA / "leptospira" / "leptospira_kirschneri_H1.gbk.gz"
UMAYDIS = DATA / "umaydis" / "umaydis.fa.gz"


@pytest.fixture(scope="module")
def corpus() -> GenomeCorpus:
    return GenomeCorpus([LEPTO, UMAYDIS])


def test_genbank_and_fasta_genomes_share_one_name_space(corpus):
    assert list(corpus.genomes) == ["leptospira_kirschneri_H1", "umaydis"]
    assert len(corpus.names) == 75 + 36
    assert all(n.startswith(("leptospira_kirschneri_H1/", "umaydis/")) for n in corpus.names)
    assert corpus.genome_bases()["leptospira_kirschneri_H1"] == 4_594_734
    # GenBank sequence equals what Biopython reads, FASTA what pysam reads
    from Bio import SeqIO
    import gzip

    with gzip.open(LEPTO, "rt") as fh:
        rec = next(SeqIO.parse(fh, "genbank"))
    ids, _ = corpus.read(f"leptospira_kirschneri_H1/{rec.id}", 10, 60)
    assert ids.tobytes().decode() == str(rec.seq[10:60]).upper()
    assert corpus.topology[f"leptospira_kirschneri_H1/{rec.id}"] == "linear"


def test_manifest_names_weights_and_relative_paths(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "a.fa").write_text(">c1\n" + "ACGT" * 50 + "\n>c2\n" + "GGCC" * 10 + "\n")
    manifest = tmp_path / "genomes.tsv"
    manifest.write_text(f"path\tname\tweight\ng/a.fa\tAlpha\t2\n{UMAYDIS}\tUm\n")
    entries = resolve_genomes(manifest)
    assert [(e.name, e.weight) for e in entries] == [("Alpha", 2.0), ("Um", 1.0)]
    c = GenomeCorpus(manifest)
    assert c.sizes["Alpha/c1"] == 200 and c.short_contigs(100) == {"Alpha": 1, "Um": 0}
    bad = tmp_path / "bad.tsv"
    bad.write_text("g/a.fa\tA\t-1\n")
    with pytest.raises(DnahnetInputError, match="weight"):
        resolve_genomes(bad)


def test_folder_of_genomes(tmp_path):
    for name in ("x.fa", "y.fasta", "notes.txt"):
        (tmp_path / name).write_text(">s\n" + "ACGT" * 10 + "\n")
    assert [e.name for e in resolve_genomes(tmp_path)] == ["x", "y"]


def test_genome_splits_never_share_a_genome(corpus):
    named = genome_splits(corpus, valid=["umaydis"])
    train_genomes = {corpus.genome_of[iv.chrom] for iv in named["train"].intervals}
    valid_genomes = {corpus.genome_of[iv.chrom] for iv in named["valid"].intervals}
    assert train_genomes == {"leptospira_kirschneri_H1"} and valid_genomes == {"umaydis"}
    assert not named["test"].intervals
    for seed in range(4):
        splits = genome_splits(corpus, valid_fraction=0.1, seed=seed)
        owners = [{corpus.genome_of[iv.chrom] for iv in splits[s].intervals} for s in ("train", "valid", "test")]
        assert owners[0] and owners[1]
        assert not (owners[0] & owners[1]) and not (owners[0] & owners[2]) and not (owners[1] & owners[2])
        # whole genomes: every contig of a genome is in its split, untouched
        for s in ("train", "valid"):
            assert all(iv.start == 0 and iv.end == corpus.sizes[iv.chrom] for iv in splits[s].intervals)
    with pytest.raises(DnahnetInputError, match="both"):
        genome_splits(corpus, valid=["umaydis"], test=["umaydis"])


def test_windows_never_cross_or_pad_short_contigs(corpus):
    split = genome_splits(corpus)["train"]
    sampler = CorpusSampler(split, 4096, weighting="uniform", seed=3)
    assert all(iv.length >= 4096 for iv in sampler.intervals)
    for i in range(200):
        w = sampler.window(i)
        assert w.end - w.start == 4096 and 0 <= w.start and w.end <= corpus.sizes[w.chrom]


def test_uniform_weighting_balances_genomes_length_weighting_follows_bases(corpus):
    split = genome_splits(corpus)["train"]
    n = 2000
    uniform = CorpusSampler(split, 1024, weighting="uniform", seed=0)
    by_length = CorpusSampler(split, 1024, weighting="length", seed=0)
    frac_u = np.mean([corpus.genome_of[uniform.window(i).chrom] == "umaydis" for i in range(n)])
    frac_l = np.mean([corpus.genome_of[by_length.window(i).chrom] == "umaydis" for i in range(n)])
    assert abs(frac_u - 0.5) < 0.05
    expected = by_length.genome_probs[by_length.genome_names.index("umaydis")]
    assert 0.8 < expected < 0.83 and abs(frac_l - expected) < 0.03
    # reproducible: window i is a pure function of (seed, i)
    again = CorpusSampler(split, 1024, weighting="uniform", seed=0)
    assert [again.window(i) for i in range(20)] == [uniform.window(i) for i in range(20)]


def test_build_data_accepts_a_corpus_split_by_genome():
    from dnahnet.data.setup import build_data

    data = DataConfig(genome=[str(LEPTO), str(UMAYDIS)], split_by="genome", valid_genomes=["leptospira_kirschneri_H1"],
                      seq_len=512, eval_windows=4, genome_weighting="uniform")
    batches, evals = build_data(data, TrainConfig(tokens_per_step=1024, micro_batch_size=2))
    assert isinstance(batches.sampler, CorpusSampler)
    assert {batches.sampler.source.genome_of[iv.chrom] for iv in batches.sampler.intervals} == {"umaydis"}
    assert len(evals) == 2 and tuple(evals[0]["input_ids"].shape) == (2, 512)
