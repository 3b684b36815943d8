"""dnahnet.io.fasta: one FASTA record reader for score/embed, fine-tuning sets and zero-shot fitness references."""

from __future__ import annotations

import gzip

import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet.io.fasta import FastaRecord, fasta_bases, iter_fasta_records, read_fasta

TEXT = ">s1 label=1 first record\nACGTac\ngtNN\n\n>s2\t0\nAC GT\r\n>\nTTTT\n"


@pytest.fixture
def fasta_files(tmp_path):
    plain = tmp_path / "r.fa"
    plain.write_text(TEXT)
    packed = tmp_path / "r.fa.gz"
    with gzip.open(packed, "wt") as fh:
        fh.write(TEXT)
    return plain, packed


def test_records_keep_names_descriptions_and_soft_mask(fasta_files):
    plain, packed = fasta_files
    expected = [FastaRecord("s1", "label=1 first record", b"ACGTacgtNN", 1), FastaRecord("s2", "0", b"ACGT", 5),
                FastaRecord("line7", "", b"TTTT", 7)]
    assert list(iter_fasta_records(plain)) == expected
    assert list(iter_fasta_records(packed)) == expected
    assert read_fasta(packed) == {"s1": b"ACGTacgtNN", "s2": b"ACGT", "line7": b"TTTT"}
    assert fasta_bases(plain) == fasta_bases(packed) == 18 and fasta_bases(plain.parent / "absent.fa") == 0


def test_every_caller_reads_the_same_records(fasta_files):
    from dnahnet.finetune.data import read_labelled
    from dnahnet.infer.fasta_input import iter_fasta
    from dnahnet.zeroshot.fitness import read_cds_fasta

    plain, packed = fasta_files
    scored = [(r.name, r.seq.tobytes() if r.seq is not None else None) for r in iter_fasta(packed)]
    assert scored == [("s1", b"ACGTACGTNN"), ("s2", b"ACGT"), ("line7", b"TTTT")]
    labelled = read_labelled(plain, task="classify", need_label=False)
    assert [(n, s.tobytes()) for n, s in zip(labelled.names, labelled.seqs)] == scored
    assert labelled.labels[:2].tolist() == [1.0, 0.0]
    assert read_cds_fasta(plain) == {n: s.decode() for n, s in scored}


@pytest.mark.parametrize(
    "text, message",
    [
        ("ACGT\n>s1\nACGT\n", "record line 1: not FASTA: sequence before the first '>' header line"),
        ("LOCUS       c1  8 bp\n", "record line 1: not FASTA: sequence before the first '>' header line (it looks like GenBank)"),
        ("\n\n", "no FASTA records ('>' header lines) found"),
    ],
)
def test_bad_fasta_is_one_line_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.fa"
    path.write_text(text)
    with pytest.raises(DnahnetInputError) as err:
        list(iter_fasta_records(path))
    assert str(err.value) == (f"{path}, {message}" if message.startswith("record") else f"{path}: {message}")


def test_missing_truncated_and_duplicate(tmp_path):
    with pytest.raises(DnahnetInputError, match=r"absent\.fa: reference CDS FASTA file not found"):
        read_fasta(tmp_path / "absent.fa", what="reference CDS FASTA")
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(gzip.compress(b">a\n" + b"ACGT" * 5000)[:-20])
    with pytest.raises(DnahnetInputError, match=r"cut\.fa\.gz: cannot read file"):
        list(iter_fasta_records(cut))
    twice = tmp_path / "twice.fa"
    twice.write_text(">a\nAC\n>b\nGT\n>a\nTT\n")
    with pytest.raises(DnahnetInputError) as err:
        read_fasta(twice)
    assert str(err.value) == f"{twice}, record line 5: record name 'a' is used twice (first at line 1)"
