"""The bundled demo genome: a gene-dense 5 Mb slice of real hg19 chr22 with its annotation.

The slice is one FASTA record named `chr22_slice`; position p of it is hg19
chr22 position p + offset (0-based), the offset being in `data_manifests/demo.json`.
Annotation tracks are cut to the slice (features overlapping it, clipped) and
shifted to slice coordinates. `data_manifests/demo/README.md` has the provenance
and the command that rebuilt it:

    python -m dnahnet.data.demo rank  --source /work/shared/data/hg19-chr22
    python -m dnahnet.data.demo build --source /work/shared/data/hg19-chr22 --start 37400000 --end 42400000

`rank` lists candidate slices by RefSeq exon count (windows with at least 60%
real, non-N sequence); `build` writes the slice, its indexes, the cut tracks and
`demo.json`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pysam

from dnahnet.data.genome import Genome
from dnahnet.data.intervals import fraction_splits
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, atomic_path
from dnahnet.io.bed import iter_bed_intervals

TRACKS = ("RefSeqGene", "RefSeqExon", "RefSeqTSS", "RefSeqTES", "CpGIsland")
SLICE_NAME = "chr22_slice"
LINE_WIDTH = 60


def manifest_dir() -> Path:
    """`data_manifests/`: `$DNAHNET_MANIFESTS`, the source checkout, or the installed `dnahnet_manifests` package."""
    candidates = []
    if os.environ.get("DNAHNET_MANIFESTS"):
        candidates.append(Path(os.environ["DNAHNET_MANIFESTS"]))
    candidates.append(Path(__file__).resolve().parents[2] / "data_manifests")
    spec = importlib.util.find_spec("dnahnet_manifests")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) for p in spec.submodule_search_locations)
    for folder in candidates:
        if (folder / "demo.json").exists():
            return folder
    raise DnahnetInputError(
        "cannot find the bundled data manifests (data_manifests/demo.json); set DNAHNET_MANIFESTS to that folder"
    )


def demo_manifest() -> dict:
    """demo.json with every file path made absolute."""
    folder = manifest_dir()
    with open(folder / "demo.json", encoding="utf-8") as fh:
        manifest = json.load(fh)
    manifest["fasta"] = str(folder / manifest["fasta"])
    manifest["annotation"] = {k: str(folder / v) for k, v in manifest["annotation"].items()}
    return manifest


def demo_genome_path() -> Path:
    """The bundled bgzip FASTA (with .fai and .gzi beside it)."""
    return Path(demo_manifest()["fasta"])


def demo_annotation_paths() -> dict[str, Path]:
    """Track name (RefSeqGene, RefSeqExon, RefSeqTSS, RefSeqTES, CpGIsland) -> BED in slice coordinates."""
    return {k: Path(v) for k, v in demo_manifest()["annotation"].items()}


# ----- building the slice (maintainers only) ------------------------------------------------------
def rank_slices(source_dir: Path, width: int, step: int = 100_000, min_real: float = 0.6) -> list[dict]:
    """Candidate `width`-base slices of chr22, most RefSeq exons (fully inside) first."""
    genome = Genome(source_dir / "chr22.fa.gz")
    size = genome.sizes["chr22"]
    exons = np.array([(iv.start, iv.end) for iv in iter_bed_intervals(source_dir / "RefSeqExon.chr22.bed")])
    genes = np.array([(iv.start, iv.end) for iv in iter_bed_intervals(source_dir / "RefSeqGene.chr22.bed")])
    out = []
    for start in range(0, size - width + 1, step):
        end = start + width
        real = width - genome.n_count("chr22", start, end)
        if real < min_real * width:
            continue
        n_exons = int(((exons[:, 0] >= start) & (exons[:, 1] <= end)).sum())
        n_genes = int(((genes[:, 0] >= start) & (genes[:, 1] <= end)).sum())
        out.append(
            {"start": start, "end": end, "real_bases": real, "exons": n_exons, "genes": n_genes,
             "exons_per_real_mb": round(n_exons / (real / 1e6), 1)}
        )
    return sorted(out, key=lambda r: (-r["exons"], r["start"]))


def build_demo(source_dir: Path, out_dir: Path, start: int, end: int) -> dict:
    """Write the slice FASTA (bgzip + .fai + .gzi), the cut tracks and `demo.json` (in out_dir's parent)."""
    genome = Genome(source_dir / "chr22.fa.gz")
    genome.check_range("chr22", start, end)
    out_dir.mkdir(parents=True, exist_ok=True)
    seq = genome.fetch("chr22", start, end)
    fasta = out_dir / f"{SLICE_NAME}.fa.gz"
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / f"{SLICE_NAME}.fa"
        with open(plain, "wb") as fh:
            fh.write(f">{SLICE_NAME} hg19 chr22:{start + 1}-{end} (1-based, inclusive)\n".encode())
            for a in range(0, len(seq), LINE_WIDTH):
                fh.write(seq[a : a + LINE_WIDTH] + b"\n")
        with atomic_path(fasta) as tmp_gz:
            pysam.tabix_compress(str(plain), str(tmp_gz), force=True)
    for suffix in (".fai", ".gzi"):
        Path(str(fasta) + suffix).unlink(missing_ok=True)
    pysam.faidx(str(fasta))

    counts = {}
    annotation = {}
    for track in TRACKS:
        rows = []
        for iv in iter_bed_intervals(source_dir / f"{track}.chr22.bed"):
            if iv.chrom == "chr22" and iv.end > start and iv.start < end:
                rows.append([SLICE_NAME, str(max(iv.start, start) - start), str(min(iv.end, end) - start), *iv.fields[3:]])
        rows.sort(key=lambda r: (int(r[1]), int(r[2])))
        name = f"{track}.bed"
        with atomic_open(out_dir / name) as fh:
            fh.writelines("\t".join(r) + "\n" for r in rows)
        counts[track] = len(rows)
        annotation[track] = f"{out_dir.name}/{name}"

    sliced = Genome(fasta)
    splits = fraction_splits(sliced, 0.05, 0.05)
    raw = np.frombuffer(seq, dtype=np.uint8)
    manifest = {
        "name": "demo",
        "description": "Gene-dense slice of real human chr22 (hg19), soft-masked repeats in lower case",
        "fasta": f"{out_dir.name}/{fasta.name}",
        "sequence": {
            "name": SLICE_NAME,
            "assembly": "hg19",
            "source_chrom": "chr22",
            "offset": start,
            "end": end,
            "length": end - start,
            "acgt_bases": sliced.acgt_bases(SLICE_NAME),
            "softmasked_bases": int(((raw >= ord("a")) & (raw <= ord("z")) & (raw != ord("n"))).sum()),
        },
        "coordinates": "0-based: hg19 chr22 position = chr22_slice position + offset",
        "annotation": annotation,
        "annotation_records": counts,
        "splits": {
            "split_by": "fraction",
            "valid_fraction": 0.05,
            "test_fraction": 0.05,
            "intervals": {k: [list(iv) for iv in s.intervals] for k, s in splits.items()},
        },
        "provenance": "data_manifests/demo/README.md",
        "command": f"python -m dnahnet.data.demo build --source {source_dir} --start {start} --end {end}",
    }
    with atomic_open(out_dir.parent / "demo.json") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    for path in [out_dir.parent / "demo.json", *out_dir.iterdir()]:
        path.chmod(0o644)  # atomic writes start private (mkstemp); bundled data is for everyone
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dnahnet.data.demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rank = sub.add_parser("rank", help="list candidate slices by exon count")
    rank.add_argument("--source", type=Path, required=True)
    rank.add_argument("--width", type=int, default=5_000_000)
    rank.add_argument("--top", type=int, default=10)
    build = sub.add_parser("build", help="write the demo slice into data_manifests/demo")
    build.add_argument("--source", type=Path, required=True)
    build.add_argument("--start", type=int, required=True)
    build.add_argument("--end", type=int, required=True)
    build.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "data_manifests" / "demo")
    args = parser.parse_args(argv)
    if args.command == "rank":
        print("start\tend\treal_bases\tgenes\texons\texons_per_real_mb")
        for r in rank_slices(args.source, args.width)[: args.top]:
            print(f"{r['start']}\t{r['end']}\t{r['real_bases']}\t{r['genes']}\t{r['exons']}\t{r['exons_per_real_mb']}")
    else:
        m = build_demo(args.source, args.out, args.start, args.end)
        print(json.dumps({"sequence": m["sequence"], "annotation_records": m["annotation_records"]}, indent=2))


if __name__ == "__main__":
    main()
