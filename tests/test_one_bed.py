"""One BED, many commands: every command that takes a BED reads the same intervals from the
same files (tab- or space-separated, plain, gzip or bgzip, with header/track/browser lines)
and says the same one line about a bad line.

Cheap commands run end to end through `dnahnet_cli.main.main`; for the rest the test calls
the library reader the command uses (pretrain's `build_splits`, annotate's `load_annotation`
and `read_bed_columns`, view's `read_intervals`, fine-tuning's `read_labelled`).
"""

from __future__ import annotations

import gzip

import pytest
from Bio import bgzf

from dnahnet.config import DataConfig
from dnahnet.data.intervals import build_splits
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.fasta_input import iter_bed_intervals, iter_genome_intervals
from dnahnet.infer.sharding import select_regions
from dnahnet_cli.main import main
from infer_fixtures import CLEAN, GAPPY, SMALL_SIZES, chr22, checkpoints, small_genome  # noqa: F401

# (chrom, start, end, name, label); chrB of small_genome is all N, so no interval lies on it.
ROWS = [("chrA", 100, 600, "r1", 1), ("chrC", 1000, 1500, "r2", 0), ("chrC", 2000, 2300, "r3", 1)]
INTERVALS = [(c, s, e) for c, s, e, _, _ in ROWS]
HEADER = "#chrom\tstart\tend\tname\tlabel\ntrack name=regions description=\"test regions\"\nbrowser position chrA:1-600\n"
BAD = "chrA\tten\t600\tr1\t1\n"
BAD_MESSAGE = "record line {line}: start 'ten' is not an integer"


def _lines(sep: str) -> str:
    return "".join(sep.join(map(str, row)) + "\n" for row in ROWS)


def _write(path, text: str, how: str):
    if how == "gzip":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    elif how == "bgzip":
        with bgzf.BgzfWriter(str(path), "wb") as fh:
            fh.write(text.encode())
    else:
        path.write_text(text)
    return path


VARIANTS = {  # name: (file name, text, compression)
    "tab": ("tab.bed", _lines("\t"), "plain"),
    "space": ("space.bed", _lines(" "), "plain"),
    "spaces-and-header": ("spaced.bed", HEADER + _lines("   "), "plain"),
    "header-track": ("header.bed", HEADER + _lines("\t"), "plain"),
    "gzip": ("gz.bed.gz", HEADER + _lines("\t"), "gzip"),
    "bgzip": ("bgz.bed.gz", _lines("\t"), "bgzip"),
}


@pytest.fixture
def beds(tmp_path):
    return {k: _write(tmp_path / name, text, how) for k, (name, text, how) in VARIANTS.items()}


@pytest.fixture
def bad_beds(tmp_path):
    """The bad line after the header (line 4) in a plain file, and as line 2 of a gzip one."""
    return {
        "plain": (_write(tmp_path / "bad.bed", HEADER + BAD + _lines("\t"), "plain"), 4),
        "gzip": (_write(tmp_path / "bad.bed.gz", _lines("\t").splitlines(True)[0] + BAD, "gzip"), 2),
    }


def _library_readers(genome):
    """What each BED-taking command reads from a file, as sorted (chrom, start, end)."""
    from dnahnet.analysis.annotations import load_annotation
    from dnahnet.finetune.data import read_labelled
    from dnahnet.io.bed import read_bed_columns
    from dnahnet.io.tracks import read_intervals

    def pretrain(path):  # split_by: bed, one unlabelled file = the train split
        splits = build_splits(genome, DataConfig(split_by="bed", train_bed=str(path)))
        return [tuple(iv) for iv in splits["train"].intervals]

    def annotate(path):  # --annotation x.bed
        t = load_annotation(path, feature_type="region")
        on = t.type == "region"
        return list(zip(t.chrom[on].tolist(), t.start[on].tolist(), t.end[on].tolist()))

    def boundaries_table(path):  # annotate --boundaries
        cols = read_bed_columns(path)
        return list(zip(cols.chrom.tolist(), cols.start.tolist(), cols.end.tolist()))

    def view(path):  # view --annotation
        return [(c, s, e) for c in SMALL_SIZES for s, e, _, _ in read_intervals(path, c, 0, SMALL_SIZES[c])]

    def finetune(path):  # finetune/predict: labelled BED + --genome
        data = read_labelled(path, genome=genome, label_column=5)
        return list(zip(data.names, data.labels.tolist()))

    return {
        "pretrain split_by bed": pretrain,
        "score/boundaries --bed": lambda p: [(r.chrom, r.start, r.end) for r in select_regions(genome, bed=p)],
        "embed --genome --bed": lambda p: [(r.chrom, r.offset, r.offset + r.length) for r in iter_genome_intervals(genome, p)],
        "baseline markov --bed": lambda p: [iv[:3] for iv in iter_bed_intervals(p, genome)],
        "annotate --annotation": annotate,
        "annotate --boundaries": boundaries_table,
        "view --annotation": view,
        "finetune bed": finetune,
    }


def test_every_reader_reads_the_same_intervals_from_every_variant(beds, small_genome):
    readers = _library_readers(small_genome)
    for variant, path in beds.items():
        for command, read in readers.items():
            got = read(path)
            if command == "finetune bed":
                assert got == [(n, float(lab)) for _, _, _, n, lab in ROWS], (variant, command)
            else:
                assert sorted(got) == INTERVALS, (variant, command, got)


def test_every_reader_reports_a_bad_line_the_same_way(bad_beds, small_genome):
    readers = _library_readers(small_genome)
    for kind, (path, line) in bad_beds.items():
        expected = f"{path}, {BAD_MESSAGE.format(line=line)}"
        for command, read in readers.items():
            with pytest.raises(DnahnetInputError) as err:
                read(path)
            assert err.value.one_line() == expected, (kind, command)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _commands(checkpoints, genome, tmp_path) -> dict[str, list]:
    """The cheap commands, each with a BED placeholder and its own --out."""
    ckpt, fa = checkpoints["tiny"], genome.path
    return {
        "score": ["score", "--checkpoint", ckpt, "--genome", fa, "--bed", "{bed}", "--out", tmp_path / "s{k}.tsv"],
        "boundaries": ["boundaries", "--checkpoint", checkpoints["tiny2"], "--genome", fa, "--bed", "{bed}",
                       "--out", tmp_path / "b{k}.bed"],
        "embed": ["embed", "--checkpoint", ckpt, "--genome", fa, "--bed", "{bed}", "--out", tmp_path / "e{k}.npz"],
        "baseline markov": ["baseline", "markov", "--fit", fa, "--eval", fa, "--bed", "{bed}", "--order", "2"],
    }


def _fill(argv: list, bed, k: str) -> list[str]:
    return [str(a).replace("{bed}", str(bed)).replace("{k}", k) for a in argv]


def test_cheap_commands_end_to_end_give_the_same_output_for_every_variant(beds, checkpoints, small_genome, tmp_path,
                                                                           capsys):
    outputs: dict[str, set] = {}
    for variant, path in beds.items():
        if variant not in ("tab", "spaces-and-header", "gzip"):
            continue  # the library test covers every variant; three keep this one fast
        for command, argv in _commands(checkpoints, small_genome, tmp_path).items():
            code, out, err = _run(capsys, *_fill(argv, path, variant))
            assert code == 0, (variant, command, err)
            if command == "score":
                text = (tmp_path / f"s{variant}.tsv").read_text()
                rows = [line.split("\t")[:2] for line in text.splitlines() if line and not line.startswith(("#", "name"))]
                assert rows == [[f"{n}", str(e - s)] for _, s, e, n, _ in ROWS]
                outputs.setdefault(command, set()).add(text[text.index("\nname") :])  # after the command-line comment
            elif command == "boundaries":
                data = (tmp_path / f"b{variant}.bed").read_bytes()
                chunks = [line.split(b"\t") for line in data.splitlines() if not line.startswith(b"track")]
                assert chunks and all(
                    any(c.decode() == rc and rs <= int(s) < int(e) <= re for rc, rs, re in INTERVALS) for c, s, e, *_ in chunks
                )
                outputs.setdefault(command, set()).add(data)
            elif command == "embed":
                import numpy as np

                with np.load(tmp_path / f"e{variant}.npz") as z:
                    assert z["names"].tolist() == [n for *_, n, _ in ROWS]
                    outputs.setdefault(command, set()).add(z["embeddings"].tobytes())
            else:  # 1,300 bases in 3 regions, the first base of each not scored
                assert "1,297 ACGT positions scored" in out and "of the 3 regions" in out, out
                outputs.setdefault(command, set()).add(out[: out.index("command:")])
    assert {k: len(v) for k, v in outputs.items()} == {k: 1 for k in outputs} and len(outputs) == 4


def test_a_bad_line_is_the_same_one_line_error_from_every_command(bad_beds, checkpoints, small_genome, tmp_path, capsys):
    commands = _commands(checkpoints, small_genome, tmp_path)
    commands["pretrain split_by bed"] = [
        "pretrain", "--config", "tiny", "--device", "cpu", "--genome", small_genome.path, "--steps", "1",
        "--set", "data.split_by=bed", "--set", "data.train_bed={bed}", "--out", tmp_path / "run{k}"]
    path, line = bad_beds["gzip"]
    for command, argv in commands.items():
        code, _, err = _run(capsys, *_fill(argv, path, "bad"))
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 2 and lines == [f"dnahnet: error: {path}, {BAD_MESSAGE.format(line=line)}"], (command, err)
