"""Splits, the window sampler and the fixed evaluation set, on the bundled chr22 slice."""

from __future__ import annotations

import numpy as np
import pytest

from dnahnet.config import DataConfig
from dnahnet.data.demo import demo_manifest
from dnahnet.data.genome import Genome
from dnahnet.data.intervals import (
    Interval,
    Split,
    WindowSampler,
    bed_splits,
    build_splits,
    chromosome_splits,
    eval_windows,
    fraction_splits,
    merge_intervals,
    subtract_intervals,
)
from dnahnet.data.text import ByteCorpus, text_splits
from dnahnet.errors import DnahnetInputError

SLICE = "chr22_slice"


def acgt(genome, chrom, start, end) -> int:
    return (end - start) - genome.n_count(chrom, start, end)


def test_fraction_split_holds_out_the_end_of_each_chromosome(demo_genome):
    splits = build_splits(demo_genome, DataConfig(split_by="fraction", valid_fraction=0.05, test_fraction=0.05))
    expected = demo_manifest()["splits"]["intervals"]
    for name in ("train", "valid", "test"):
        assert [list(iv) for iv in splits[name].intervals] == expected[name]
    total = demo_genome.acgt_bases(SLICE)
    (v,) = splits["valid"].intervals
    (t,) = splits["test"].intervals
    assert t.end == 5_000_000 and v.end == t.start and splits["train"].intervals[0].end == v.start
    assert acgt(demo_genome, *t) == pytest.approx(0.05 * total, abs=1)
    assert acgt(demo_genome, *v) == pytest.approx(0.05 * total, abs=2)


def test_chromosome_splits_and_their_errors(write_fasta, data_cache):
    g = Genome(write_fasta({"c1": "ACGT" * 300, "c2": "ACGT" * 300, "c3": "ACGT" * 300}), cache_dir=data_cache)
    splits = chromosome_splits(g, [], ["c2"], ["c3"])
    assert splits["train"].intervals == [Interval("c1", 0, 1200)]
    with pytest.raises(DnahnetInputError, match="'chrZ'") as err:
        chromosome_splits(g, ["c1"], ["chrZ"], [])
    assert "tiny.fa" in str(err.value) and "valid_chroms" in str(err.value)
    with pytest.raises(DnahnetInputError, match="more than one split"):
        chromosome_splits(g, ["c1"], ["c1"], [])


def test_bed_splits_labelled_file_and_held_out_priority(demo_genome, tmp_path):
    labelled = tmp_path / "sequences.bed"
    labelled.write_text(
        "# header\n"
        f"{SLICE}\t1000000\t2000000\ttrain\n"
        f"{SLICE}\t1500000\t1600000\tvalid\n"  # overlaps train: removed from train
        f"{SLICE}\t2000000\t2500000\ttrain\n"  # touches the first train interval: merged
        f"{SLICE}\t3000000\t3200000\ttest\n"
    )
    splits = bed_splits(demo_genome, str(labelled))
    assert splits["train"].intervals == [
        Interval(SLICE, 1_000_000, 1_500_000),
        Interval(SLICE, 1_600_000, 2_500_000),
    ]
    assert splits["valid"].intervals == [Interval(SLICE, 1_500_000, 1_600_000)]
    assert splits["test"].intervals == [Interval(SLICE, 3_000_000, 3_200_000)]


def test_bed_naming_a_missing_chromosome_or_range_is_an_error(demo_genome, tmp_path):
    bed = tmp_path / "train.bed"
    bed.write_text("chr22\t100\t200\n")
    with pytest.raises(DnahnetInputError, match="record chr22") as err:
        bed_splits(demo_genome, str(bed))
    assert "train.bed" in str(err.value)
    bed.write_text(f"{SLICE}\t4999000\t5000001\n")
    with pytest.raises(DnahnetInputError, match="outside"):
        bed_splits(demo_genome, str(bed))
    bed.write_text(f"{SLICE}\tten\t200\n")
    with pytest.raises(DnahnetInputError, match="line 1"):
        bed_splits(demo_genome, str(bed))


def test_seq_len_longer_than_every_interval_and_empty_split(write_fasta, data_cache):
    g = Genome(write_fasta({"a": "ACGT" * 100, "b": "ACGT" * 150}), cache_dir=data_cache)
    split = Split("train", g, [Interval("a", 0, 400), Interval("b", 0, 600)])
    with pytest.raises(DnahnetInputError, match="seq_len 601 is longer than every interval") as err:
        WindowSampler(split, 601)
    assert "tiny.fa" in str(err.value)
    with pytest.raises(DnahnetInputError, match="'test' is empty"):
        WindowSampler(Split("test", g, []), 100)
    with pytest.raises(DnahnetInputError, match="train split is empty"):
        build_splits(g, DataConfig(split_by="bed", train_bed=str(_empty_bed(data_cache))))


def _empty_bed(folder):
    path = folder / "empty.bed"
    path.write_text("")
    return path


def test_all_n_split_is_refused_by_name(write_fasta, data_cache):
    g = Genome(write_fasta({"gap": "N" * 5000}, "gaps.fa"), cache_dir=data_cache)
    with pytest.raises(DnahnetInputError, match="at most 10% N") as err:
        WindowSampler(Split("train", g, [Interval("gap", 0, 5000)]), 100)
    assert "gaps.fa" in str(err.value)


def test_windows_stay_inside_intervals_and_under_the_n_limit(demo_genome, demo_sequence):
    # four intervals over N-rich parts of the slice; windows may never straddle them
    ivs = [Interval(SLICE, a, b) for a, b in [(0, 600_000), (600_000, 1_400_000), (2_000_000, 2_003_000), (4_000_000, 4_500_000)]]
    sampler = WindowSampler(Split("train", demo_genome, ivs), 1000, max_n_fraction=0.05, seed=3)
    seq = np.frombuffer(demo_sequence, dtype=np.uint8)
    isn = ~np.isin(seq, np.frombuffer(b"ACGTacgt", dtype=np.uint8))
    hits = np.zeros(len(ivs), dtype=int)
    for i in range(3000):
        w = sampler.window(i)
        inside = [k for k, iv in enumerate(ivs) if iv.start <= w.start and w.end <= iv.end]
        assert len(inside) == 1 and w.end - w.start == 1000
        hits[inside[0]] += 1
        assert isn[w.start : w.end].sum() <= 50
    assert hits[[0, 1, 3]].min() > 100  # the 3 kb interval offers too few starts to be sure of a hit


def test_draws_are_uniform_over_valid_start_positions(write_fasta, data_cache):
    rng = np.random.default_rng(0)
    seqs = {c: bytes(rng.choice(list(b"ACGT"), size=n).astype(np.uint8)) for c, n in [("a", 10_000), ("b", 30_000)]}
    g = Genome(write_fasta(seqs), cache_dir=data_cache)
    sampler = WindowSampler(chromosome_splits(g, [], [], [])["train"], 100, seed=7)
    windows = [sampler.window(i) for i in range(4000)]
    share_a = np.mean([w.chrom == "a" for w in windows])
    assert share_a == pytest.approx(9901 / (9901 + 29901), abs=0.03)
    starts_b = np.array([w.start for w in windows if w.chrom == "b"])
    assert starts_b.min() >= 0 and starts_b.max() <= 29_900
    assert np.histogram(starts_b, bins=4, range=(0, 29_901))[0].min() > 0.2 * len(starts_b)


def test_window_i_is_a_pure_function_of_seed_and_index(demo_genome):
    split = fraction_splits(demo_genome, 0.05, 0.05)["train"]
    a = WindowSampler(split, 512, seed=11)
    b = WindowSampler(split, 512, seed=11)
    assert [a.window(i) for i in (0, 5, 999_999)] == [b.window(i) for i in (0, 5, 999_999)]
    assert a.window(5) != WindowSampler(split, 512, seed=12).window(5)


def test_sampler_state_restores_the_stream_exactly(demo_genome):
    split = fraction_splits(demo_genome, 0.05, 0.05)["train"]
    sampler = WindowSampler(split, 256, seed=5)
    for _ in range(10):
        next(sampler)
    state = sampler.state_dict()
    expected = [next(sampler) for _ in range(5)]
    resumed = WindowSampler(split, 256, seed=5)
    resumed.load_state_dict(state)
    assert [next(resumed) for _ in range(5)] == expected
    with pytest.raises(DnahnetInputError, match="seq_len"):
        WindowSampler(split, 128, seed=5).load_state_dict(state)


def test_eval_windows_are_fixed_disjoint_and_clean(demo_genome):
    valid = fraction_splits(demo_genome, 0.05, 0.05)["valid"]
    first = eval_windows(valid, 32, 1024, seed=0)
    assert first == eval_windows(valid, 32, 1024, seed=0)
    assert first != eval_windows(valid, 32, 1024, seed=1)
    (iv,) = valid.intervals
    starts = [w.start for w in first]
    assert starts == sorted(starts) and all(b - a >= 1024 for a, b in zip(starts, starts[1:]))
    assert all(iv.start <= w.start and w.end <= iv.end for w in first)
    assert all(demo_genome.n_count(*w) <= 102 for w in first)


def test_eval_windows_fall_back_to_overlapping_draws_when_the_split_is_small(write_fasta, data_cache):
    g = Genome(write_fasta({"s": "ACGT" * 1000}), cache_dir=data_cache)
    split = Split("valid", g, [Interval("s", 0, 3500)])
    windows = eval_windows(split, 5, 1000, seed=0)
    assert len(windows) == 5
    assert {(w.start, w.end) for w in windows} >= {(0, 1000), (1000, 2000), (2000, 3000)}
    assert all(w.end <= 3500 for w in windows)


def test_text_corpus_splits_by_byte_ranges_and_samples_inside_files(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_bytes(bytes(range(256)) * 40)  # 10,240 bytes
    (folder / "sub" / "b.txt").write_bytes(b"hello world " * 1000)  # 12,000 bytes
    (folder / ".hidden").write_bytes(b"x" * 100)
    corpus = ByteCorpus(folder)
    assert corpus.names == ["corpus/a.txt", "corpus/sub/b.txt"]
    splits = text_splits(corpus, 0.1, 0.1)
    total = 22_240
    assert splits["test"].intervals == [Interval("corpus/sub/b.txt", 12_000 - round(total * 0.1), 12_000)]
    assert sum(iv.end - iv.start for iv in splits["train"].intervals) == total - 2 * round(total * 0.1)
    sampler = WindowSampler(splits["train"], 128, seed=0)
    for i in range(200):
        w, ids, soft = sampler.sample(i)
        data = (folder / w.chrom.split("/", 1)[1]).read_bytes()
        assert ids.tobytes() == data[w.start : w.end] and not soft.any()


def test_interval_subtraction_matches_a_bitmap():
    rng = np.random.default_rng(5)
    for _ in range(200):
        def random_intervals(k):
            a = rng.integers(0, 1000, size=k)
            return [Interval("c", int(s), int(s + rng.integers(0, 120))) for s in a]

        keep, remove = merge_intervals(random_intervals(6)), random_intervals(8)
        bitmap = np.zeros(1200, dtype=bool)
        for iv in keep:
            bitmap[iv.start : iv.end] = True
        for iv in remove:
            bitmap[iv.start : iv.end] = False
        got = np.zeros(1200, dtype=bool)
        for iv in subtract_intervals(keep, remove):
            assert iv.end > iv.start and not got[iv.start : iv.end].any()
            got[iv.start : iv.end] = True
        assert np.array_equal(got, bitmap)


def test_range_check_names_the_source_record_position_and_unit():
    from dnahnet.data.intervals import check_in_sequence

    sizes = {f"c{i}": 100 for i in range(7)}
    check_in_sequence(sizes, "c1", 0, 100, source="g.fa", kind="FASTA")  # whole record is fine
    with pytest.raises(DnahnetInputError) as missing:
        check_in_sequence(sizes, "chrZ", 0, 1, source="g.fa", kind="FASTA")
    assert "'chrZ' is not in FASTA g.fa (it has: c0, c1, c2, c3, c4, ...)" in missing.value.one_line()
    with pytest.raises(DnahnetInputError) as outside:
        check_in_sequence(sizes, "c2", 90, 101, source="t/", kind="text corpus", unit="bytes")
    line = outside.value.one_line()
    assert "c2:90-101 is outside c2 (100 bytes" in line and "90" in line
    with pytest.raises(DnahnetInputError):
        check_in_sequence(sizes, "c2", 5, 4, source="g.fa", kind="FASTA")  # start after end
