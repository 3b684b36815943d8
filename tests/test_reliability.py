"""Bad inputs and faults, class by class (issue 17): one line on stderr, exit 2, no traceback, nothing lost.

Every case in `REFUSED` runs the CLI in-process on small inputs made here and checks
the contract for a user mistake: exit code 2, exactly one stderr line that names the
file or option at fault, no traceback, nothing at any final output path, and every
input byte-identical afterwards (sha256 before and after). The cases that must
*succeed* differently than before (a stale index rebuilt, IUPAC alleles not scored,
a killed run's temporaries cleaned) and the two that need a training run (the
divergence guard on a checkpoint step, two runs into one folder) follow the table.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dnahnet.config import model_config_from_preset
from dnahnet.io.checkpoint import save_model
from dnahnet.nn.hnet import HNetLM
from dnahnet_cli.main import main

TINY_RUN = ["--config", "tiny", "--device", "cpu", "--tokens-per-step", "512", "--batch-size", "2"]


# ----- shared inputs ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """One tiny random checkpoint (seeded) shared by every case that needs a model."""
    folder = tmp_path_factory.mktemp("reliab") / "ck"
    torch.manual_seed(0)
    save_model(folder, HNetLM(model_config_from_preset("tiny")))
    return folder


@pytest.fixture(scope="module")
def bases() -> str:
    """4 kb of real sequence (the bundled chr22 slice, N-free stretch)."""
    from dnahnet.data.demo import demo_genome_path

    with gzip.open(demo_genome_path(), "rt") as fh:
        seq = "".join(line.strip() for line in fh if not line.startswith(">"))
    return seq[344000:348000].upper()


def _fasta(path: Path, records: dict[str, str], width: int = 60) -> Path:
    with open(path, "w") as fh:
        for name, seq in records.items():
            fh.write(f">{name}\n" + "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width)))
    return path


VCF_HEADER = "##fileformat=VCFv4.2\n##contig=<ID=chrA,length=3000>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


@pytest.fixture
def ws(tmp_path, bases, ckpt) -> dict:
    """A folder of small inputs: sequences, a genome (with an N run), a VCF, a manifest."""
    seqs = _fasta(tmp_path / "seqs.fa", {"a": bases[:300], "b": bases[300:500]})
    genome_seq = bases[:1000] + "N" * 200 + bases[1200:3000]
    genome = _fasta(tmp_path / "g.fa", {"chrA": genome_seq})
    vcf = tmp_path / "calls.vcf"
    vcf.write_text(VCF_HEADER + f"chrA\t500\tv1\t{genome_seq[499]}\t{'A' if genome_seq[499] != 'A' else 'C'}\t.\t.\t.\n")
    return {"dir": tmp_path, "ckpt": ckpt, "seqs": seqs, "genome": genome, "genome_seq": genome_seq, "vcf": vcf}


def run(argv: list, capfd) -> tuple[int, str, str]:
    capfd.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return rc, out, err


def digest(path: Path) -> str | None:
    if path.is_dir():
        return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


# ----- the table: (id, build(ws) -> (argv, text the error must name, final output paths)) ---------------
def _out_is_fasta_input(w):
    return ["score", "--checkpoint", w["ckpt"], "--fasta", w["seqs"], "--out", w["seqs"]], "--fasta", []


def _out_is_per_base(w):
    x = w["dir"] / "x.tsv"
    return ["score", "--checkpoint", w["ckpt"], "--fasta", w["seqs"], "--out", x, "--per-base", x], "--per-base", [x]


def _variants_out_is_vcf(w):
    return ["variants", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--vcf", w["vcf"], "--out", w["vcf"]], "--vcf", []


def _boundaries_out_is_genome(w):
    return (["boundaries", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--region", "chrA:1-500", "--out", w["genome"]],
            "--genome", [])


def _boundaries_probs_is_index(w):
    from dnahnet.data.genome import Genome

    Genome(w["genome"])  # builds g.fa.fai next to it
    fai = Path(str(w["genome"]) + ".fai")
    return (["boundaries", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--region", "chrA:1-500",
             "--out", w["dir"] / "b.bed", "--probs", fai], "--genome index", [w["dir"] / "b.bed"])


def _existing_folder(command):
    def build(w):
        folder = w["dir"] / "existing"
        folder.mkdir()
        argv = {
            "score": ["score", "--checkpoint", w["ckpt"], "--fasta", w["seqs"]],
            "variants": ["variants", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--vcf", w["vcf"]],
            "boundaries": ["boundaries", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--region", "chrA:1-500"],
        }[command]
        return argv + ["--out", folder], "existing", []
    return build


def _plain_gzip_vcf(w):
    gz = w["dir"] / "calls.vcf.gz"
    gz.write_bytes(gzip.compress(w["vcf"].read_bytes()))
    out = w["dir"] / "v.tsv"
    return ["variants", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--vcf", gz, "--out", out], "plain gzip", [out]


def _bad_config(section, field, value):
    def build(w):
        from dnahnet.config import load_preset

        cfg = load_preset("tiny")
        cfg[section][field] = value
        path = w["dir"] / "bad.json"
        path.write_text(json.dumps(cfg))
        out = w["dir"] / "run"
        return ["pretrain", "--config", path, "--device", "cpu", "--out", out], ("bad.json", f"{field}:"), [out]
    return build


def _pretrain_seq_len_0(w):
    out = w["dir"] / "run"
    return ["pretrain", *TINY_RUN, "--seq-len", "0", "--steps", "1", "--out", out], "seq_len", [out]


def _flops_seq_len_0(w):
    return ["flops", "tiny", "--seq-len", "0"], "--seq-len", []


def _convert_bare_tensor(w):
    pt = w["dir"] / "tensor.pt"
    torch.save(torch.zeros(3), pt)
    out = w["dir"] / "conv"
    return ["convert", "--config", w["ckpt"] / "config.json", "--weights", pt, "--out", out], "tensor.pt", [out]


def _convert_onto_checkpoint(w):
    import shutil

    target = w["dir"] / "trained"
    shutil.copytree(w["ckpt"], target)
    (target / "trainer.pt").write_bytes(b"trainer state")
    return (["convert", "--config", w["ckpt"] / "config.json", "--weights", w["ckpt"] / "model.safetensors", "--out", target],
            "--overwrite", [])


def _manifest_without_url(w):
    manifest = w["dir"] / "m.json"
    manifest.write_text(json.dumps({"name": "x", "filename": "x.fa.gz", "total_bases": 10}))
    dest = w["dir"] / "genomes"
    return ["data", "fetch", manifest, "--dest", dest], "url", [dest / "x.fa.gz"]


def _fetch_wrong_base_count(w):
    manifest = w["dir"] / "m.json"
    manifest.write_text(json.dumps({"name": "x", "filename": "x.fa.gz", "url": w["genome"].as_uri(), "total_bases": 12345}))
    dest = w["dir"] / "genomes"
    return ["data", "fetch", manifest, "--dest", dest], "12,345", [dest / "x.fa.gz", dest / "x.fa.gz.fai"]


def _essentiality_limit(w):
    out = w["dir"] / "ess"
    return (["zeroshot", "essentiality", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--annotation", w["genome"],
             "--out", out, "--limit", "-1"], "--limit", [out])


def _boundaries_batch_0(w):
    out = w["dir"] / "b.bed"
    return (["boundaries", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--region", "chrA:1-500", "--out", out,
             "--batch-size", "0"], "--batch-size", [out])


def _genbank(w, features: bool) -> Path:
    from Bio.Seq import Seq
    from Bio.SeqFeature import FeatureLocation, SeqFeature
    from Bio.SeqIO import write
    from Bio.SeqRecord import SeqRecord

    rec = SeqRecord(Seq(w["genome_seq"][:900]), id="chrG", name="chrG", annotations={"molecule_type": "DNA", "topology": "linear"})
    rec.features.append(SeqFeature(FeatureLocation(0, 900, 1), type="source"))
    if features:
        rec.features.append(SeqFeature(FeatureLocation(99, 399, 1), type="CDS", qualifiers={"locus_tag": ["g1"]}))
    path = w["dir"] / "g.gbk"
    write([rec], path, "genbank")
    return path


def _genbank_without_cds(w):
    gbk = _genbank(w, features=False)
    out = w["dir"] / "ess"
    return (["zeroshot", "essentiality", "--checkpoint", w["ckpt"], "--genome", gbk, "--annotation", gbk, "--out", out],
            "no CDS", [out / "genes.tsv", out / "summary.json"])


def _essentiality_window(w):
    gbk = _genbank(w, features=True)
    out = w["dir"] / "ess"
    return (["zeroshot", "essentiality", "--checkpoint", w["ckpt"], "--genome", gbk, "--annotation", gbk, "--out", out,
             "--window", "10"], "--window", [out / "genes.tsv"])


def _labels_before_scoring(w):
    gbk = _genbank(w, features=True)
    labels = w["dir"] / "labels.tsv"
    labels.write_text("gene\tessential\ng1\tmaybe\n")
    out = w["dir"] / "ess"
    return (["zeroshot", "essentiality", "--checkpoint", w["ckpt"], "--genome", gbk, "--annotation", gbk, "--out", out,
             "--labels", labels], "labels.tsv", [out / "genes.tsv"])


def _duplicate_names_genome(w):
    dup = _fasta(w["dir"] / "dup.fa", {"chrA": w["genome_seq"][:600]})
    with open(dup, "a") as fh:
        fh.write(">chrB\nACGTACGT\n>chrA\n" + w["genome_seq"][600:1000] + "\n")
    out = w["dir"] / "b.bed"
    return (["boundaries", "--checkpoint", w["ckpt"], "--genome", dup, "--region", "chrA:1-500", "--out", out],
            "lines 1 and 14", [out])


def _duplicate_names_fasta(w):
    dup = _fasta(w["dir"] / "dup.fa", {"s": w["genome_seq"][:100]})
    with open(dup, "a") as fh:
        fh.write(">s second\n" + w["genome_seq"][100:200] + "\n")
    out, track = w["dir"] / "s.tsv", w["dir"] / "s.bedGraph"
    return ["score", "--checkpoint", w["ckpt"], "--fasta", dup, "--out", out, "--per-base", track], "lines 1 and 4", [out, track]


def _flipped_bit(w):
    import shutil

    bad = w["dir"] / "flipped"
    shutil.copytree(w["ckpt"], bad)
    data = bytearray((bad / "model.safetensors").read_bytes())
    header = struct.unpack("<Q", data[:8])[0]
    data[8 + header + (len(data) - 8 - header) // 2 + 3] ^= 0x40
    (bad / "model.safetensors").write_bytes(bytes(data))
    out = w["dir"] / "x.tsv"
    return ["score", "--checkpoint", bad, "--fasta", w["seqs"], "--out", out], "model.safetensors", [out]


def _fasta_is_a_folder(w):
    out = w["dir"] / "x.tsv"
    return ["score", "--checkpoint", w["ckpt"], "--fasta", w["dir"], "--out", out], ("--fasta", "folder"), [out]


def _missing_manifest(w):
    return ["data", "fetch", w["dir"] / "nope.json", "--dest", w["dir"] / "genomes"], "manifest file not found", []


def _flops_config_file(w):
    from dnahnet.config import load_preset

    path = w["dir"] / "model.json"
    path.write_text(json.dumps({**load_preset("tiny")["model"], "d_model": [True, 48]}))
    return ["flops", path], ("model.json", "d_model"), []


def _checkpoint_is_a_file(w):
    out = w["dir"] / "x.tsv"
    return ["score", "--checkpoint", w["ckpt"] / "config.json", "--fasta", w["seqs"], "--out", out], "got a file", [out]


def _vcf_malformed_line(w):
    bad = w["dir"] / "bad.vcf"
    bad.write_text(VCF_HEADER + "chrA\t500\tv1\tA\tC\t.\t.\t.\nchrA\tfive\tv2\tA\n")
    out = w["dir"] / "v.tsv"
    return ["variants", "--checkpoint", w["ckpt"], "--genome", w["genome"], "--vcf", bad, "--out", out], "line 5", [out]


def _annotate_stage_0(w):
    bed = w["dir"] / "b.bed"
    bed.write_text("chrA\t10\t20\tstage1\t500\t+\n")
    out = w["dir"] / "ann"
    return (["annotate", "--boundaries", bed, "--annotation", bed, "--genome", w["genome"], "--out", out, "--stage", "0"],
            "--stage", [out / "summary.json"])


def _fitness_out_is_reference(w):
    variants = w["dir"] / "variants.tsv"  # the name of one of the outputs in --out
    variants.write_text("hgvs\nc.1A>G\n")
    return (["zeroshot", "fitness", "--checkpoint", w["ckpt"], "--reference", w["seqs"], "--variants", variants,
             "--out", w["dir"]], "--variants", [w["dir"] / "summary.json"])


def _resume_seq_len(w):
    return ["pretrain", "--out", w["dir"] / "none", "--resume", "--seq-len", "64"], "nothing to resume", [w["dir"] / "none"]


REFUSED = {
    # an output onto an input or onto another output (silent data loss before)
    "score --out = --fasta": _out_is_fasta_input,
    "score --out = --per-base": _out_is_per_base,
    "variants --out = --vcf": _variants_out_is_vcf,
    "boundaries --out = --genome": _boundaries_out_is_genome,
    "boundaries --probs = genome index": _boundaries_probs_is_index,
    "fitness --out folder holds --variants": _fitness_out_is_reference,
    # tracebacks before
    "score --out folder": _existing_folder("score"),
    "variants --out folder": _existing_folder("variants"),
    "boundaries --out folder": _existing_folder("boundaries"),
    "variants plain-gzip VCF": _plain_gzip_vcf,
    "config lr 'fast'": _bad_config("train", "lr", "fast"),
    "config seq_len '256'": _bad_config("data", "seq_len", "256"),
    "config d_model [32.0, 48]": _bad_config("model", "d_model", [32.0, 48]),
    "config steps 2.5": _bad_config("train", "steps", 2.5),
    "pretrain --seq-len 0": _pretrain_seq_len_0,
    "flops --seq-len 0": _flops_seq_len_0,
    "convert bare tensor": _convert_bare_tensor,
    "data fetch manifest without url": _manifest_without_url,
    # accepted silently before
    "zeroshot essentiality --limit -1": _essentiality_limit,
    "boundaries --batch-size 0": _boundaries_batch_0,
    "GenBank without CDS": _genbank_without_cds,
    "annotate --stage 0": _annotate_stage_0,
    # misleading errors before
    "essentiality --window 10": _essentiality_window,
    "--checkpoint a file": _checkpoint_is_a_file,
    "score --fasta a folder": _fasta_is_a_folder,
    "data fetch missing manifest": _missing_manifest,
    "flops config error names its file": _flops_config_file,
    "VCF malformed record line": _vcf_malformed_line,
    "resume without a run": _resume_seq_len,
    # silent data loss before
    "convert onto a training checkpoint": _convert_onto_checkpoint,
    "duplicate names in a genome": _duplicate_names_genome,
    "duplicate names in --fasta": _duplicate_names_fasta,
    "flipped bit in the weights": _flipped_bit,
    "fetched genome with wrong base count": _fetch_wrong_base_count,
    "labels checked before scoring": _labels_before_scoring,
}


# Found while reading the records, so scoring has begun (the outputs still never appear).
STREAMED = {"duplicate names in --fasta"}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_refused_with_one_line(case, ws, capfd, monkeypatch):
    from dnahnet.infer.model import DnaModel

    argv, names, finals = REFUSED[case](ws)

    def no_scoring(*args, **kwargs):
        raise AssertionError("the input error should have come before any scoring")

    if case not in STREAMED:
        monkeypatch.setattr(DnaModel, "iter_score", no_scoring)
    inputs = [p for p in ws["dir"].rglob("*") if p.is_file()] + [p for p in ws["ckpt"].iterdir()]
    before = {p: digest(p) for p in inputs}
    rc, _, err = run(argv, capfd)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("dnahnet: error: "), err
    assert all(name in lines[0] for name in ([names] if isinstance(names, str) else names)), lines[0]
    assert "Traceback" not in err
    for path in finals:
        assert not path.exists(), f"{path} was written"
    assert {p: digest(p) for p in inputs} == before  # no input changed (nor did the shared checkpoint)
    leftovers = [p.name for p in ws["dir"].rglob(".*") if p.name.endswith((".tmp", ".partial", ".staged"))]
    assert not leftovers


# ----- faults: a full disk -------------------------------------------------------------------------------
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_is_one_line_and_leaves_nothing(ws, capfd, monkeypatch):
    out = ws["dir"] / "x.tsv"
    monkeypatch.setattr(os, "fsync", _no_space)
    rc, _, err = run(["score", "--checkpoint", ws["ckpt"], "--fasta", ws["seqs"], "--out", out], capfd)
    # Scoring finished before the write failed, so its closing progress line ("score: N / N bases") may come first.
    err = "\n".join(line for line in err.strip().splitlines() if not line.startswith("score: "))
    assert rc == 2 and err.count("\n") == 0 and "no space left on device" in err and str(out) in err
    conv = ws["dir"] / "conv"
    rc, _, err = run(["convert", "--config", ws["ckpt"] / "config.json", "--weights", ws["ckpt"] / "model.safetensors",
                      "--out", conv], capfd)
    assert rc == 2 and "no space left on device" in err and "config.json" in err
    assert not out.exists() and not conv.exists()
    assert not [p for p in ws["dir"].iterdir() if p.name.startswith(".")]


# ----- cases that now succeed correctly ------------------------------------------------------------------
def test_foreign_index_is_rebuilt_not_trusted(ws, bases):
    """An index newer than its FASTA but made for another file (cp -p, rsync -a) is rebuilt: the right bases come back."""
    import pysam

    from dnahnet.data.genome import Genome

    v1, v2 = ws["dir"] / "v1.fa", ws["dir"] / "v2.fa"
    _fasta(v1, {"chrA": bases[:2000], "chrB": bases[2000:4000]})
    _fasta(v2, {"chrZ": bases[1000:2000], "chrA": bases[:1000][::-1]}, width=50)
    for src in (v1, v2):
        gz = ws["dir"] / "g.fa.gz"
        pysam.tabix_compress(str(src), str(gz), force=True)
        if src == v2:
            os.utime(gz, (1577836800, 1577836800))  # older than the index, as after `cp -p`
        genome = Genome(gz, cache_dir=ws["dir"] / "cache")
    assert genome.sizes == {"chrZ": 1000, "chrA": 1000}
    assert genome.fetch("chrA", 0, 1000).decode() == bases[:1000][::-1]
    plain = ws["dir"] / "p.fa"  # the same for a plain FASTA and its .fai
    for src in (v1, v2):
        plain.write_bytes(src.read_bytes())
        if src == v2:
            os.utime(plain, (1577836800, 1577836800))
        genome = Genome(plain, cache_dir=ws["dir"] / "cache")
    assert genome.fetch("chrA", 0, 1000).decode() == bases[:1000][::-1]


def test_iupac_alt_and_ref_in_n_are_noted_not_scored(ws, capfd):
    seq = ws["genome_seq"]
    ref = seq[499]
    alts = [b for b in "ACGT" if b != ref]
    vcf = ws["dir"] / "iupac.vcf"
    vcf.write_text(VCF_HEADER + f"chrA\t1100\tinN\tN\tA\t.\t.\t.\n" + f"chrA\t500\tsnv\t{ref}\t{','.join(alts)},N,R\t.\t.\t.\n"
                   + "chrA\t0\ttelomere\tN\tA\t.\t.\t.\n")
    out = ws["dir"] / "v.tsv"
    rc, _, err = run(["variants", "--checkpoint", ws["ckpt"], "--genome", ws["genome"], "--vcf", vcf, "--out", out], capfd)
    assert rc == 0, err
    rows = [line.split("\t") for line in out.read_text().splitlines() if not line.startswith("#")]
    header, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    notes = {(r[col["id"]], r[col["alt"]]): (r[col["note"]], r[col["delta_bits"]]) for r in rows}
    assert notes[("inN", "A")] == ("ref_in_N", "nan")
    assert notes[("snv", "N")] == ("unsupported_alt", "nan") and notes[("snv", "R")] == ("unsupported_alt", "nan")
    assert all(notes[("snv", a)][0] == "ok" and notes[("snv", a)][1] != "nan" for a in alts)
    assert notes[("telomere", "A")][0] == "outside_contig"


def test_convert_overwrite_replaces_the_whole_folder(ws, capfd):
    import shutil

    target = ws["dir"] / "trained"
    shutil.copytree(ws["ckpt"], target)
    (target / "trainer.pt").write_bytes(b"trainer state")
    rc, _, err = run(["convert", "--config", ws["ckpt"] / "config.json", "--weights", ws["ckpt"] / "model.safetensors",
                      "--out", target, "--overwrite"], capfd)
    assert rc == 0, err
    assert sorted(p.name for p in target.iterdir()) == ["COMPLETE", "config.json", "model.safetensors", "train.json"]
    assert run(["info", target], capfd)[0] == 0
    assert not [p for p in ws["dir"].iterdir() if p.name.startswith(".trained")]


def test_stale_temporaries_of_killed_runs_are_removed(ws, capfd):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = ws["dir"] / "x.tsv"
    stale = ws["dir"] / f".x.tsv.{dead.pid}.abcd1234.tmp"
    live = ws["dir"] / f".x.tsv.{os.getppid()}.abcd1234.tmp"  # a running process's temporary stays
    stale.write_text("half")
    live.write_text("half")
    rc, _, err = run(["score", "--checkpoint", ws["ckpt"], "--fasta", ws["seqs"], "--out", out], capfd)
    assert rc == 0, err
    assert out.exists() and not stale.exists() and live.exists()


def test_identical_weights_give_identical_files_with_a_checksum(tmp_path):
    from safetensors import safe_open

    torch.manual_seed(1)
    model = HNetLM(model_config_from_preset("tiny"))
    hashes = {digest(save_model(tmp_path / f"m{i}", model) / "model.safetensors") for i in range(6)}
    assert len(hashes) == 1
    with safe_open(str(tmp_path / "m0" / "model.safetensors"), framework="pt") as fh:
        assert len(fh.metadata()["sha256"]) == 64


def test_json_summaries_are_strict(tmp_path):
    import math

    from dnahnet.io.jsonfile import write_json

    path = write_json(tmp_path / "s.json", {"rho": math.nan, "x": [1.0, math.inf], "n": 3})

    def refuse(token):
        raise ValueError(token)

    assert json.loads(path.read_text(), parse_constant=refuse) == {"rho": None, "x": [1.0, None], "n": 3}


# ----- training: the divergence guard on a checkpoint step, and two runs into one folder ------------------------
def test_divergence_on_a_checkpoint_step_keeps_the_good_checkpoint(tmp_path, capfd):
    out = tmp_path / "run"
    rc, _, err = run(["pretrain", *TINY_RUN, "--steps", "2", "--out", out], capfd)
    assert rc == 0, err
    good = digest(out / "latest")
    rc, _, err = run(["pretrain", "--out", out, "--resume", "--steps", "3", "--lr", "1e12"], capfd)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "diverged at step 3" in lines[0] and "step 2" in lines[0], err
    assert digest(out / "latest") == good  # the blown-up step-3 weights were not checkpointed
    assert json.loads((out / "latest" / "train.json").read_text())["step"] == 2
    rc, _, err = run(["pretrain", "--out", out, "--resume", "--seq-len", "128"], capfd)
    assert rc == 2 and "--seq-len 128" in err and "256" in err


@pytest.mark.slow  # a second Python process has to start (about 20 s on a loaded 2-core machine)
def test_second_run_into_a_folder_in_use_is_refused(tmp_path, capfd):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "dnahnet_cli", "pretrain", *TINY_RUN, "--steps", "1000", "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 120
        while not ((out / ".lock").exists() and (out / ".lock").read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.2)
        rc, _, err = run(["pretrain", *TINY_RUN, "--steps", "2", "--out", out, "--overwrite"], capfd)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and f"in use by pid {first.pid}" in lines[0], err
    finally:
        first.terminate()  # SIGTERM: the run unwinds and releases the folder
        first.wait(timeout=60)
    assert "Traceback" not in first.stderr.read().decode()
    # the terminated run removed its temporaries (and its folder, if it had not written a checkpoint yet)
    assert not out.exists() or not [p for p in out.iterdir() if p.name.endswith((".partial", ".tmp"))]
