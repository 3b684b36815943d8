"""Multi-genome corpora: many FASTA or GenBank genomes as one window source.

`GenomeCorpus(paths)` takes files, folders (every FASTA/GenBank file inside, sorted)
or a TSV manifest (`path`, `name`, optional `weight`; relative paths are relative to
the manifest; `#` lines and a header line starting with `path` are skipped).

Choices:
- Sequence names are `genome/contig` (the genome name is the manifest name, else
  the file name without its FASTA/GenBank/.gz suffixes), so contigs of different
  genomes never clash and a split can be stated per genome.
- FASTA genomes are read lazily through `Genome` (indexed, bgzip or plain; never
  loaded whole). GenBank genomes are parsed once (`dnahnet.io.genbank`, shared
  with the annotation reader) and held in memory (a bacterial genome is a few
  Mb; one byte per base), with each record's `topology` (`circular`/`linear`)
  kept in `topology`.
- Splits are by whole genome (`genome_splits`): no genome is in two splits.
- Contigs shorter than the training window are never sampled (the sampler keeps
  only intervals of at least `seq_len` bases, so no window crosses a contig and
  nothing is padded into the loss); `short_contigs(seq_len)` counts them.
- Sampling weights per genome (`CorpusSampler`): "length" = every valid window
  start of the split equally likely (a genome's share grows with its length);
  "uniform" = each genome equally likely, then a uniform start inside it. A
  manifest weight multiplies either.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnahnet.alphabet import N_BYTE, normalize_dna
from dnahnet.errors import DnahnetInputError
from dnahnet.data.intervals import SPLITS, Interval, Split, Window, WindowSampler, check_in_sequence
from dnahnet.io.fasta import FASTA_SUFFIXES
from dnahnet.io.genbank import GENBANK_SUFFIXES, read_genbank
from dnahnet.io.tables import read_genome_manifest

SEP = "/"


def _strip_suffixes(name: str) -> str:
    name = re.sub(r"\.(gz|bgz)$", "", name, flags=re.I)
    for suffix in FASTA_SUFFIXES + GENBANK_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def genome_format(path: Path) -> str | None:
    """'fasta', 'genbank' or None, by file name (optionally .gz)."""
    name = re.sub(r"\.(gz|bgz)$", "", path.name.lower())
    if name.endswith(FASTA_SUFFIXES):
        return "fasta"
    if name.endswith(GENBANK_SUFFIXES):
        return "genbank"
    return None


class GenBankGenome:
    """A GenBank file's records held in memory, with the `Genome` read interface."""

    is_dna = True

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.seqs: dict[str, np.ndarray] = {}  # read-only views of the parsed bytes (shared with the parse cache)
        self.topology: dict[str, str] = {}
        for record in read_genbank(self.path).records:
            if record.sequence is None:
                raise DnahnetInputError("GenBank record has no sequence", file=str(self.path), record=record.name)
            self.seqs[record.name] = np.frombuffer(record.sequence, dtype=np.uint8)
            self.topology[record.name] = record.topology
        self.names = list(self.seqs)
        self.sizes = {n: len(s) for n, s in self.seqs.items()}
        self._runs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def check_range(self, chrom: str, start: int, end: int, *, file: str | None = None) -> None:
        check_in_sequence(self.sizes, chrom, start, end, source=str(self.path), kind="GenBank", file=file)

    def fetch(self, chrom: str, start: int, end: int) -> bytes:
        self.check_range(chrom, start, end)
        return self.seqs[chrom][start:end].tobytes()

    def fetch_normalized(self, chrom: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        return normalize_dna(self.fetch(chrom, start, end))

    read = fetch_normalized

    def _run_table(self, chrom: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if chrom not in self._runs:
            self.check_range(chrom, 0, 0)
            isn = (normalize_dna(self.seqs[chrom])[0] == N_BYTE).view(np.int8)
            edges = np.diff(isn, prepend=np.int8(0), append=np.int8(0))
            rs, re_ = np.flatnonzero(edges == 1).astype(np.int64), np.flatnonzero(edges == -1).astype(np.int64)
            self._runs[chrom] = (rs, re_, np.concatenate([[0], np.cumsum(re_ - rs)]).astype(np.int64))
        return self._runs[chrom]

    def n_runs(self, chrom: str) -> tuple[np.ndarray, np.ndarray]:
        rs, re_, _ = self._run_table(chrom)
        return rs, re_

    def n_counts(self, chrom: str, starts: np.ndarray | int, ends: np.ndarray | int) -> np.ndarray:
        rs, re_, cum = self._run_table(chrom)

        def covered(x: np.ndarray) -> np.ndarray:
            if len(rs) == 0:
                return np.zeros_like(x)
            j = np.searchsorted(rs, x, side="left")
            prev = np.maximum(j - 1, 0)
            return np.where(j > 0, cum[prev] + np.minimum(re_[prev], x) - rs[prev], 0)

        return covered(np.asarray(ends, dtype=np.int64)) - covered(np.asarray(starts, dtype=np.int64))


class _FaidxView:
    """pysam.FastaFile's read interface (references, lengths, fetch -> str) over a GenBankGenome."""

    def __init__(self, genome: GenBankGenome) -> None:
        self.genome = genome
        self.references = tuple(genome.names)
        self.lengths = tuple(genome.sizes[n] for n in genome.names)

    def fetch(self, chrom: str, start: int, end: int) -> str:
        return self.genome.fetch(chrom, start, end).decode("ascii")

    def __enter__(self) -> "_FaidxView":
        return self

    def __exit__(self, *exc) -> None:
        return None


def open_faidx(path: str | os.PathLike):
    """An indexed FASTA (pysam.FastaFile) or a GenBank file behind the same read interface."""
    import pysam

    path = Path(path)
    if genome_format(path) == "genbank":
        return _FaidxView(GenBankGenome(path))
    try:
        return pysam.FastaFile(str(path))
    except (OSError, ValueError) as exc:
        raise DnahnetInputError(f"cannot open indexed FASTA ({exc}); a .gz FASTA must be bgzip-compressed",
                                file=str(path)) from None


def open_genome(path: str | os.PathLike):
    """A `Genome` (FASTA, lazy) or a `GenBankGenome` (in memory), by file name."""
    from dnahnet.data.genome import Genome

    path = Path(path)
    if genome_format(path) == "genbank":
        return GenBankGenome(path)
    return Genome(path)


@dataclass
class GenomeEntry:
    name: str
    path: Path
    weight: float = 1.0


def resolve_genomes(paths: str | os.PathLike | list) -> list[GenomeEntry]:
    """Files, folders (FASTA/GenBank files inside, sorted) and TSV manifests → genome entries."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    entries: list[GenomeEntry] = []
    for p in map(Path, paths):
        if not p.exists():
            raise DnahnetInputError("genome file, folder or manifest not found", file=str(p))
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and genome_format(f))
            if not found:
                raise DnahnetInputError("folder holds no FASTA or GenBank file (.fa/.fasta/.fna/.gb/.gbk/.gbff[.gz])", file=str(p))
            entries += [GenomeEntry(_strip_suffixes(f.name), f) for f in found]
        elif p.suffix.lower() in (".tsv", ".txt", ".manifest"):
            entries += [GenomeEntry(r.name or _strip_suffixes(r.path.name), r.path, r.weight) for r in read_genome_manifest(p)]
        else:
            entries.append(GenomeEntry(_strip_suffixes(p.name), p))
    seen: set[str] = set()
    for e in entries:
        if e.name in seen:
            raise DnahnetInputError(f"two genomes are named {e.name!r}; name them in a TSV manifest", file=str(e.path))
        if SEP in e.name:
            raise DnahnetInputError(f"genome name {e.name!r} must not contain {SEP!r}", file=str(e.path))
        seen.add(e.name)
    return entries


class GenomeCorpus:
    """Several genomes addressed as one source; sequence names are `genome/contig`."""

    is_dna = True

    def __init__(self, paths: str | os.PathLike | list) -> None:
        self.entries = resolve_genomes(paths)
        self.path = Path(self.entries[0].path)
        self.genomes = {e.name: open_genome(e.path) for e in self.entries}
        self.weights = {e.name: e.weight for e in self.entries}
        self.names: list[str] = []
        self.sizes: dict[str, int] = {}
        self.genome_of: dict[str, str] = {}
        self.topology: dict[str, str] = {}
        self._where: dict[str, tuple[object, str]] = {}
        for gname, g in self.genomes.items():
            for contig in g.names:
                full = f"{gname}{SEP}{contig}"
                self.names.append(full)
                self.sizes[full] = g.sizes[contig]
                self.genome_of[full] = gname
                self.topology[full] = getattr(g, "topology", {}).get(contig, "linear")
                self._where[full] = (g, contig)

    def __repr__(self) -> str:
        return f"GenomeCorpus({len(self.genomes)} genomes, {len(self.names)} sequences, {sum(self.sizes.values()):,} bases)"

    def _get(self, chrom: str, file: str | None = None):
        if chrom not in self._where:
            raise DnahnetInputError(f"no sequence named {chrom!r} in the corpus (names are genome{SEP}contig)", file=file or str(self.path), record=chrom)
        return self._where[chrom]

    def check_range(self, chrom: str, start: int, end: int, *, file: str | None = None) -> None:
        g, contig = self._get(chrom, file)
        g.check_range(contig, start, end, file=file)

    def read(self, chrom: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        g, contig = self._get(chrom)
        return g.read(contig, start, end)

    fetch_normalized = read

    def n_runs(self, chrom: str) -> tuple[np.ndarray, np.ndarray]:
        g, contig = self._get(chrom)
        return g.n_runs(contig)

    def n_counts(self, chrom: str, starts: np.ndarray | int, ends: np.ndarray | int) -> np.ndarray:
        g, contig = self._get(chrom)
        return g.n_counts(contig, starts, ends)

    def genome_bases(self) -> dict[str, int]:
        out = {g: 0 for g in self.genomes}
        for name, size in self.sizes.items():
            out[self.genome_of[name]] += size
        return out

    def short_contigs(self, seq_len: int) -> dict[str, int]:
        """Per genome, the number of contigs shorter than `seq_len` (never sampled for training)."""
        out = {g: 0 for g in self.genomes}
        for name, size in self.sizes.items():
            if size < seq_len:
                out[self.genome_of[name]] += 1
        return out


def genome_splits(
    corpus: GenomeCorpus,
    valid: list[str] | None = None,
    test: list[str] | None = None,
    valid_fraction: float = 0.0,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, Split]:
    """Whole genomes per split: named lists, or else fractions of the corpus bases.

    With fractions, genomes are shuffled by `seed` and assigned to test, then valid,
    until each split holds at least its fraction of the bases (one genome at least
    when the fraction is positive and more than one genome is left for training).
    """
    valid, test = list(valid or []), list(test or [])
    for what, names in (("valid_genomes", valid), ("test_genomes", test)):
        for n in names:
            if n not in corpus.genomes:
                raise DnahnetInputError(f"{what} names genome {n!r}; the corpus has {', '.join(corpus.genomes)}")
    if set(valid) & set(test):
        raise DnahnetInputError(f"genome(s) {', '.join(sorted(set(valid) & set(test)))} are in both valid and test")
    if not valid and not test and (valid_fraction or test_fraction):
        bases = corpus.genome_bases()
        total = sum(bases.values())
        order = list(np.random.default_rng([seed, 0x6E0]).permutation(list(corpus.genomes)))
        for names, fraction in ((test, test_fraction), (valid, valid_fraction)):
            got = 0
            while fraction > 0 and len(order) > 1 and got < fraction * total:
                g = order.pop()
                names.append(g)
                got += bases[g]
    held = set(valid) | set(test)
    members = {"train": [g for g in corpus.genomes if g not in held], "valid": valid, "test": test}
    out = {}
    for split in SPLITS:
        keep = set(members[split])
        out[split] = Split(split, corpus, [Interval(n, 0, corpus.sizes[n]) for n in corpus.names if corpus.genome_of[n] in keep])
    return out


class CorpusSampler(WindowSampler):
    """`WindowSampler` whose draws first pick a genome by weight ("length" or "uniform", times manifest weights)."""

    def __init__(self, split: Split, seq_len: int, *, weighting: str = "length", **kw) -> None:
        if weighting not in ("length", "uniform"):
            raise DnahnetInputError(f"genome_weighting: must be 'length' or 'uniform', got {weighting!r}")
        super().__init__(split, seq_len, **kw)
        corpus: GenomeCorpus = split.source  # type: ignore[assignment]
        self.weighting = weighting
        counts = np.concatenate([[0], self._cum])
        genome_of = [corpus.genome_of[iv.chrom] for iv in self.intervals]
        self.genome_names = list(dict.fromkeys(genome_of))
        # intervals are grouped by genome (corpus order), so each genome owns a range of start positions
        self._ranges = []
        for g in self.genome_names:
            ks = [k for k, name in enumerate(genome_of) if name == g]
            self._ranges.append((int(counts[ks[0]]), int(counts[ks[-1] + 1])))
        sizes = np.array([b - a for a, b in self._ranges], dtype=np.float64)
        base = sizes if weighting == "length" else np.ones_like(sizes)
        w = base * np.array([corpus.weights[g] for g in self.genome_names])
        self.genome_probs = w / w.sum()
        self._gcum = np.cumsum(self.genome_probs)

    def _draw(self, rng: np.random.Generator) -> Window:
        gi = min(int(np.searchsorted(self._gcum, rng.random(), side="right")), len(self._ranges) - 1)
        a, b = self._ranges[gi]
        u = a + int(rng.integers(b - a))
        k = int(np.searchsorted(self._cum, u, side="right"))
        iv = self.intervals[k]
        start = iv.start + u - (int(self._cum[k - 1]) if k else 0)
        return Window(iv.chrom, start, start + self.seq_len)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "weighting": self.weighting}


__all__ = [
    "GenomeCorpus", "GenBankGenome", "CorpusSampler", "genome_splits", "resolve_genomes", "open_genome", "genome_format",
]
