"""The table readers of `dnahnet.io.tables`: plain and gzip read alike, comments and blank lines skipped,
and a missing column or a short row is one line naming the file and the line."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import pytest

from dnahnet.errors import DnahnetInputError
from dnahnet.io.tables import (
    Column,
    iter_sequence_table,
    iter_tsv_records,
    iter_tsv_rows,
    iter_variant_table,
    read_essentiality_labels,
    read_genome_manifest,
)


def write(path: Path, text: str) -> Path:
    """Write `text` plain, or gzip-compressed when the name ends in .gz."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def both(tmp_path: Path, name: str, text: str) -> tuple[Path, Path]:
    return write(tmp_path / name, text), write(tmp_path / (name + ".gz"), text)


def one_line_error(call, path: Path, where: str, words: str) -> None:
    with pytest.raises(DnahnetInputError) as info:
        call(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and where in message and words in message, message


VARIANTS = "# variants of one assay\n\nhgvs\tassay\tFitness\nc.1A>G\tA1\t0.5\n  \n# note\nc.2T>C\tA1\tNA\nc.3G>A\n"


def test_tsv_rows_skip_comments_and_blank_lines_and_keep_line_numbers(tmp_path):
    for path in both(tmp_path, "x.tsv", VARIANTS):
        rows = list(iter_tsv_rows(path))
        assert [r.lineno for r in rows] == [3, 4, 7, 8]
        assert rows[0].fields == ["hgvs", "assay", "Fitness"] and rows[3].fields == ["c.3G>A"]


def test_tsv_rows_split_on_tabs_only_and_strip_fields(tmp_path):
    path = write(tmp_path / "m.tsv", "my genome.fa \t Alpha\r\n")
    assert list(iter_tsv_rows(path)) == [(1, ["my genome.fa", "Alpha"])]


def test_variant_table_plain_and_gzip_give_the_same_rows(tmp_path):
    plain, gz = both(tmp_path, "v.tsv", VARIANTS)
    rows = list(iter_variant_table(plain))
    assert [(r.lineno, r.hgvs, r.assay, r.reference) for r in rows] == [
        (4, "c.1A>G", "A1", ""), (7, "c.2T>C", "A1", ""), (8, "c.3G>A", "", "")]
    assert rows[0].fitness == 0.5 and math.isnan(rows[1].fitness) and math.isnan(rows[2].fitness)
    assert list(iter_variant_table(gz)) == rows  # missing fitness is the one math.nan object, so tuples compare


def test_variant_table_aliases_and_errors(tmp_path):
    rows = list(iter_variant_table(write(tmp_path / "a.tsv", "mutant\tref\tDMS_score\nc.1A>G\tgeneX\t-1.5\n")))
    assert (rows[0].hgvs, rows[0].reference, rows[0].fitness) == ("c.1A>G", "geneX", -1.5)
    missing = write(tmp_path / "nohgvs.tsv", "# c\nassay\tfitness\nA\t1\n")
    one_line_error(lambda p: list(iter_variant_table(p)), missing, "line 2", "no 'hgvs' column (or 'variant'/'mutant')")
    short = write(tmp_path / "short.tsv", "assay\thgvs\nA1\tc.1A>G\nA1\n")
    one_line_error(lambda p: list(iter_variant_table(p)), short, "line 3", "1 columns, header has 2")
    bad = write(tmp_path / "bad.tsv", "hgvs\tfitness\nc.1A>G\thigh\n")
    one_line_error(lambda p: list(iter_variant_table(p)), bad, "line 2", "fitness must be a number, got 'high'")
    one_line_error(lambda p: list(iter_variant_table(p)), write(tmp_path / "e.tsv", "# only\n\n"), "", "variants TSV is empty")
    one_line_error(lambda p: list(iter_variant_table(p)), tmp_path / "none.tsv", "", "variants TSV not found")


def test_generic_records_fill_absent_optional_columns(tmp_path):
    cols = (Column("id", ("id",), True), Column("x", ("x",)), Column("y", ("y",)))
    path = write(tmp_path / "t.tsv", "ID\tx\n7\n8\t9\n")
    assert [(r.lineno, r.values) for r in iter_tsv_records(path, cols)] == [
        (2, {"id": "7", "x": "", "y": ""}), (3, {"id": "8", "x": "9", "y": ""})]


LABELS = "gene\tessential\torganism\n# comment\ng1\t1\tE. coli\n\ng2\t0\n"


def test_essentiality_labels_plain_and_gzip(tmp_path):
    plain, gz = both(tmp_path, "labels.tsv", LABELS)
    expected = {"g1": (1, "E. coli"), "g2": (0, "")}
    assert read_essentiality_labels(plain) == expected == read_essentiality_labels(gz)
    # the header is the first data line, even after comments; a file without one reads the same
    assert read_essentiality_labels(write(tmp_path / "h.tsv", "# x\n" + LABELS)) == expected
    assert read_essentiality_labels(write(tmp_path / "n.tsv", LABELS.split("\n", 1)[1])) == expected


def test_essentiality_label_errors_name_file_and_line(tmp_path):
    short = write(tmp_path / "short.tsv", "g1\t1\n\ng2\n")
    one_line_error(read_essentiality_labels, short, "line 3", "expected gene id and essential (0/1)")
    bad = write(tmp_path / "bad.tsv", "gene\tessential\ng1\tyes\n")
    one_line_error(read_essentiality_labels, bad, "line 2", "essential must be 0 or 1, got 'yes'")
    one_line_error(read_essentiality_labels, tmp_path / "none.tsv", "", "labels file not found")


def test_genome_manifest_plain_and_gzip(tmp_path):
    text = "path\tname\tweight\n# genomes\ng/a.fa\tAlpha\t2\n\n/abs/b.fa.gz\n"
    plain, gz = both(tmp_path, "genomes.tsv", text)
    rows = read_genome_manifest(plain)
    assert [(r.lineno, r.path, r.name, r.weight) for r in rows] == [
        (3, tmp_path / "g" / "a.fa", "Alpha", 2.0), (5, Path("/abs/b.fa.gz"), None, 1.0)]
    assert read_genome_manifest(gz) == rows


def test_genome_manifest_errors_name_file_and_line(tmp_path):
    bad = write(tmp_path / "bad.tsv", "path\n# x\na.fa\tA\t0\n")
    one_line_error(read_genome_manifest, bad, "line 3", "weight must be a positive number, got '0'")
    empty_path = write(tmp_path / "nopath.tsv", "a.fa\n\tB\n")
    one_line_error(read_genome_manifest, empty_path, "line 2", "empty path in column 1")
    one_line_error(read_genome_manifest, write(tmp_path / "e.tsv", "path\tname\n"), "", "manifest lists no genomes")


def test_sequence_table_csv_tsv_plain_and_gzip_give_the_same_rows(tmp_path):
    csv_text = "# GUE-style table\nSequence,label,name\nACGT,1,first\n\n\"AC\nGT\",0,\nTT,1,third\n"
    expected = [("row 1", "first", "ACGT", "1"), ("row 3", "row 3", "AC\nGT", "0"), ("row 4", "third", "TT", "1")]
    for path in both(tmp_path, "t.csv", csv_text):
        assert [tuple(r) for r in iter_sequence_table(path)] == expected
    tsv_text = "sequence\tlabel\tname\nACGT\t1\tfirst\n\nAC,GT\t0\t\n"  # a comma is data in a TSV
    for path in both(tmp_path, "t.tsv", tsv_text):
        assert [tuple(r) for r in iter_sequence_table(path)] == [expected[0], ("row 3", "row 3", "AC,GT", "0")]
    no_label = write(tmp_path / "u.csv", "sequence\nACGT\n")
    assert list(iter_sequence_table(no_label, need_label=False)) == [("row 1", "row 1", "ACGT", None)]


def test_sequence_table_errors_name_file_and_row(tmp_path):
    missing = write(tmp_path / "m.csv", "sequence,y\nACGT,1\n")
    one_line_error(lambda p: list(iter_sequence_table(p)), missing, "", "no 'label' column in the header (columns: sequence, y)")
    short = write(tmp_path / "s.csv", "sequence,label\nACGT,1\nACGT\n")
    one_line_error(lambda p: list(iter_sequence_table(p)), short, "row 2", "1 columns, header has 2")
    one_line_error(lambda p: list(iter_sequence_table(p)), write(tmp_path / "e.csv", ""), "", "empty file")
    one_line_error(lambda p: list(iter_sequence_table(p)), tmp_path / "none.csv", "", "file not found")
