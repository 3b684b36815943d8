"""Scoring: per-position log2 P, batching, windows, reverse-complement averaging, TSV/bedGraph output."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dnahnet.alphabet import reverse_complement
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.fasta_input import InputRecord, iter_fasta, iter_genome_intervals, text_record
from dnahnet.infer.model import plan_windows
from dnahnet.infer.scoring import score_to_tsv
from infer_fixtures import CLEAN, GAPPY, chr22, checkpoints, nan_equal, small_genome, tiny, tiny2  # noqa: F401


def read_tsv(path) -> list[dict]:
    lines = [line for line in open(path).read().splitlines() if not line.startswith("#")]
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def read_bedgraph_sums(path) -> dict[str, tuple[float, int]]:
    sums: dict[str, tuple[float, int]] = {}
    lines = open(path).readlines()
    assert lines[0].startswith("track type=bedGraph ")  # plain bedGraphs start with a track line by default
    for line in lines[1:]:
        chrom, start, end, value = line.split("\t")
        assert int(end) == int(start) + 1
        total, count = sums.get(chrom, (0.0, 0))
        sums[chrom] = (total + float(value), count + 1)
    return sums


def test_scores_are_log2_next_base_probabilities(tiny, chr22):
    seq = chr22(CLEAN[1], CLEAN[1] + 300).upper()
    ids = torch.tensor([list(seq.encode())])
    with torch.no_grad():
        logp = torch.log_softmax(tiny.net(ids).logits[0].double(), -1)
    expected = (logp[:-1].gather(-1, ids[0, 1:, None]).squeeze(-1) / math.log(2)).numpy()
    got = tiny.score([seq])[0]
    assert np.isnan(got[0])  # position 0: nothing to condition on
    np.testing.assert_allclose(got[1:], expected, atol=2e-5)


def test_n_positions_are_never_scored(tiny, chr22):
    seq = chr22(GAPPY[1] + 700, GAPPY[1] + 1500)
    values = tiny.score([seq])[0]
    is_n = np.frombuffer(seq.upper().encode(), np.uint8) == ord("N")
    assert is_n.sum() > 50
    assert np.isnan(values[is_n]).all()
    assert np.isfinite(values[1:][~is_n[1:]]).all()


def test_batch_equals_one_by_one(tiny2, chr22):
    base = chr22(GAPPY[1], GAPPY[1] + 6000)
    seqs = [base[i * 500 : i * 500 + n] for i, n in enumerate([400, 1, 0, 250, 900, 33, 600])]
    batched = tiny2.score(seqs, batch_size=4)
    for seq, b in zip(seqs, batched):
        assert nan_equal(b, tiny2.score([seq], batch_size=1)[0], atol=1e-5)
        assert len(b) == len(seq)


def test_windows_partition_every_position_once():
    for length, window, context, align in [(10_000, 1000, 200, 1), (1001, 1000, 999, 1), (5000, 700, 1, 1), (9999, 512, 100, 9)]:
        plan = plan_windows(length, window, context, align)
        covered = np.zeros(length, int)
        for w in plan:
            covered[w.count_start : w.count_end] += 1
            assert w.start <= w.count_start < w.count_end <= w.end
            assert w.start % align == 0
            assert w.count_start - w.start >= (context if w.count_start else 0)
            assert w.end - w.start <= window + align - 1
        assert (covered == 1).all()
    assert plan_windows(800, 1000, 100) == plan_windows(800, None, 100)


def test_windowed_equals_single_pass_when_window_covers_the_sequence(tiny2, chr22):
    seq = chr22(GAPPY[1], GAPPY[1] + 2000)
    single = tiny2.score([seq], window=None)[0]
    assert nan_equal(tiny2.score_long(seq, window=2000, context=100), single)
    assert nan_equal(tiny2.score_long(seq, window=5000, context=100), single)


def test_windowed_scores_are_close_to_single_pass(tiny2, chr22):
    seq = chr22(GAPPY[1], GAPPY[1] + 3000)
    single = tiny2.score([seq], window=None)[0]
    windowed = tiny2.score_long(seq, window=1024, context=512, batch_size=2)
    assert len(windowed) == len(seq)
    assert nan_equal(windowed, single, atol=1e-2)  # context truncation changes values a little


def test_rc_average_is_mean_of_both_strands(tiny, chr22):
    seq = chr22(GAPPY[1] + 700, GAPPY[1] + 1700)
    forward = tiny.score([seq])[0]
    rc_strand = tiny.score([reverse_complement(seq)])[0][::-1]
    both = tiny.score([seq], rc=True)[0]
    assert np.isnan(both[0]) and np.isnan(both[-1])
    ok = np.isfinite(forward) & np.isfinite(rc_strand)
    assert np.array_equal(np.isfinite(both), ok)
    np.testing.assert_allclose(both[ok], (forward[ok] + rc_strand[ok]) / 2, atol=1e-5)


@pytest.mark.parametrize("window", [None, 700])
def test_rc_score_is_strand_symmetric(tiny, chr22, window):
    seq = chr22(GAPPY[1] + 700, GAPPY[1] + 2700)
    a = tiny.score([seq], rc=True, window=window, context=200, batch_size=2)[0]
    b = tiny.score([reverse_complement(seq)], rc=True, window=window, context=200, batch_size=2)[0][::-1]
    assert nan_equal(a, b, atol=1e-5)


def test_tsv_totals_equal_per_base_bedgraph_and_model_scores(tiny, chr22, write_fasta, tmp_path):
    seqs = {
        "short": chr22(CLEAN[1], CLEAN[1] + 500),
        "gappy_long": chr22(GAPPY[1], GAPPY[1] + 2500),  # longer than the window: streamed in windows
        "empty": "",
        "tiny": "ACGTNNACGT",
    }
    fasta = write_fasta(seqs)
    out, track = tmp_path / "s.tsv", tmp_path / "s.bedGraph"
    summary = score_to_tsv(tiny, iter_fasta(fasta), out, per_base=track, window=1000, context=300, batch_size=4)
    rows = read_tsv(out)
    assert [r["name"] for r in rows] == list(seqs)  # input order, flagged rows in place
    assert summary.records == 4 and summary.flagged == 1
    sums = read_bedgraph_sums(track)
    model_values = tiny.score([s for s in seqs.values() if s], window=1000, context=300)
    for row, values in zip([r for r in rows if r["note"] == "ok"], model_values):
        total, count = sums[row["name"]]
        assert int(row["scored_bases"]) == count == int(np.isfinite(values).sum())
        assert float(row["loglik_bits"]) == pytest.approx(total, rel=1e-9)
        assert float(row["loglik_bits"]) == pytest.approx(float(np.nansum(values.astype(np.float64))), rel=1e-6)
        assert float(row["bits_per_base"]) == pytest.approx(-total / count, rel=1e-9)
        assert float(row["score"]) == float(row["loglik_bits"])
        seq = seqs[row["name"]].upper()
        assert int(row["n_count"]) == seq.count("N") and int(row["length"]) == len(seq)
    empty = rows[2]
    assert empty["note"] == "empty" and empty["scored_bases"] == "0"
    header = [line for line in open(out) if line.startswith("#")]
    assert any("log base 2" in h for h in header) and any("first position" in h for h in header)
    assert any("N handling" in h for h in header)


def test_reduce_mean_makes_the_per_base_mean_the_headline(tiny, write_fasta, tmp_path, chr22):
    fasta = write_fasta({"a": chr22(CLEAN[1], CLEAN[1] + 400)})
    score_to_tsv(tiny, iter_fasta(fasta), tmp_path / "m.tsv", reduce="mean")
    row = read_tsv(tmp_path / "m.tsv")[0]
    assert float(row["score"]) == pytest.approx(-float(row["bits_per_base"]), rel=1e-9)
    with pytest.raises(DnahnetInputError, match="reduce"):
        score_to_tsv(tiny, iter_fasta(fasta), tmp_path / "x.tsv", reduce="median")


def test_text_mode_reports_bits_per_byte_and_scores_every_byte(tiny, tmp_path):
    text = b"No tokenizer: Nucleotides or Newspapers, every byte is predicted. " * 20
    path = tmp_path / "t.txt"
    path.write_bytes(text)
    score_to_tsv(tiny, [text_record(path)], tmp_path / "t.tsv", dna=False, window=512, context=128)
    row = read_tsv(tmp_path / "t.tsv")[0]
    values = tiny.score([text], dna=False, window=512, context=128)[0]
    assert int(row["scored_bytes"]) == len(text) - 1  # 'N' is a letter here, not a gap
    assert float(row["bits_per_byte"]) == pytest.approx(-np.nanmean(values.astype(np.float64)), rel=1e-6)
    assert float(row["bits_per_byte"]) > 0


def test_fasta_non_iupac_error_names_record_and_position(write_fasta):
    fasta = write_fasta({"ok": "ACGT", "bad one": "ACGTRYKM" + "AC!T"})
    with pytest.raises(DnahnetInputError) as err:
        list(iter_fasta(fasta))
    assert err.value.record == "bad" and err.value.position == 11
    assert "record bad" in err.value.one_line() and "position 11" in err.value.one_line()


def test_skip_invalid_flags_the_record_and_keeps_the_rest(tiny, write_fasta, tmp_path):
    fasta = write_fasta({"a": "ACGTACGTAC", "bad": "ACGTX", "c": "TTGACCA"})
    records = list(iter_fasta(fasta, skip_invalid=True))
    assert [r.note.split(":")[0] for r in records] == ["ok", "invalid", "ok"]
    score_to_tsv(tiny, records, tmp_path / "f.tsv", batch_size=8)
    rows = read_tsv(tmp_path / "f.tsv")
    assert [r["name"] for r in rows] == ["a", "bad", "c"]
    assert rows[1]["loglik_bits"] == "nan" and "'X' at 5" in rows[1]["note"]
    assert int(rows[0]["scored_bases"]) == 9 and int(rows[2]["scored_bases"]) == 6


def test_bed_interval_outside_chromosome_names_the_line(small_genome, tmp_path):
    bed = tmp_path / "r.bed"
    bed.write_text("track name=x\nchrA\t10\t100\tfirst\nchrC\t2990\t3001\tsecond\n")
    records = iter_genome_intervals(small_genome, bed)
    first = next(records)
    assert (first.name, first.chrom, first.offset, first.length) == ("first", "chrA", 10, 90)
    with pytest.raises(DnahnetInputError) as err:
        next(records)
    assert "line 3" in err.value.one_line() and "outside chrC" in err.value.one_line()


def test_genome_intervals_place_per_base_values_at_genome_coordinates(tiny, small_genome, tmp_path):
    bed = tmp_path / "r.bed"
    bed.write_text("chrC\t1000\t1300\n")
    score_to_tsv(tiny, iter_genome_intervals(small_genome, bed), tmp_path / "g.tsv", per_base=tmp_path / "g.bg")
    first = open(tmp_path / "g.bg").readlines()[1].split("\t")  # after the track line
    assert first[:3] == ["chrC", "1001", "1002"]  # interval position 0 is not scored
    assert read_tsv(tmp_path / "g.tsv")[0]["name"] == "chrC:1000-1300"


def test_records_stream_in_input_order_across_a_long_record(tiny):
    seqs = ["ACGTTGCA" * 10, "GATTACA" * 300, "CCGGA" * 7]
    blocks = list(tiny.iter_score(iter(seqs), window=512, context=64, batch_size=2))
    assert [b.index for b in blocks if b.last] == [0, 1, 2]
    assert sum(len(b.values) for b in blocks if b.index == 1) == len(seqs[1])
    assert InputRecord("x", None, 0, "x").note == "ok"


def test_default_windows_follow_the_training_length(tmp_path):
    import torch

    from dnahnet.config import model_config_from_preset
    from dnahnet.infer.model import AUTO, DEFAULT_WINDOW, load
    from dnahnet.nn.hnet import HNetLM
    from dnahnet.io.checkpoint import save_model

    torch.manual_seed(0)
    save_model(tmp_path / "ck", HNetLM(model_config_from_preset("tiny")), train_info={"data": {"seq_len": 96}})
    model = load(tmp_path / "ck", device="cpu")
    assert model.resolve_windows(AUTO, AUTO) == (96, 48)
    assert model.resolve_windows(200, AUTO) == (200, 100)
    seq = "ACGTTGCA" * 40  # 320 bases: longer than one training window
    auto = model.score([seq])[0]
    explicit = model.score([seq], window=96, context=48)[0]
    assert np.array_equal(auto, explicit, equal_nan=True)
    save_model(tmp_path / "bare", HNetLM(model_config_from_preset("tiny")))
    assert load(tmp_path / "bare", device="cpu").resolve_windows(AUTO, AUTO)[0] == DEFAULT_WINDOW
