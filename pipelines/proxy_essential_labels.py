"""Proxy essentiality labels from GenBank product names, for genomes without a knockout screen.

The bundled L. kirschneri genome has no measured essentiality. Genes whose products belong to
the core machinery that is essential in nearly every bacterial screen (ribosomal proteins,
aminoacyl-tRNA synthetases, RNA polymerase core subunits, translation factors, DNA gyrase,
DNA polymerase III) are labelled 1; "hypothetical protein" genes, which are rarely essential,
are labelled 0; every other gene is left out. An AUROC against these labels is a sanity check
of the zero-shot score (does a knockout of core machinery cost more bits than one of an
uncharacterised gene?), not an essentiality benchmark.

    python -m dnahnet_pipelines.proxy_essential_labels GENOME.gbk.gz OUT.tsv [--organism NAME]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from dnahnet.errors import DnahnetInputError, report_input_error
from dnahnet.io.atomic import atomic_open

CORE_ESSENTIAL = re.compile(
    r"ribosomal protein|tRNA ligase|tRNA synthetase|DNA-directed RNA polymerase subunit (alpha|beta)|"
    r"translation (initiation|elongation) factor|elongation factor (Tu|G|Ts)|DNA gyrase|DNA polymerase III",
    re.IGNORECASE,
)
NON_ESSENTIAL = re.compile(r"^hypothetical protein$", re.IGNORECASE)


def proxy_labels(genbank: str | Path) -> list[tuple[str, int, str]]:
    """(locus tag, label, product) for every CDS whose product matches one of the two classes."""
    from dnahnet.io.genbank import qualifier, read_genbank

    rows = []
    for record in read_genbank(genbank).records:
        for feat in record.features:
            if feat.type != "CDS":
                continue
            # the GenBank annotation loader's id precedence, so labels match genes.tsv ids
            tag = qualifier(feat, "locus_tag", "gene", "protein_id")
            product = qualifier(feat, "product")
            if not tag:
                continue
            if CORE_ESSENTIAL.search(product):
                rows.append((tag, 1, product))
            elif NON_ESSENTIAL.search(product):
                rows.append((tag, 0, product))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("genbank")
    ap.add_argument("out")
    ap.add_argument("--organism", default="", help="organism column (for macro AUROC over several genomes)")
    a = ap.parse_args(argv)
    if not Path(a.genbank).is_file():
        return report_input_error(DnahnetInputError("GenBank file not found", file=a.genbank), "proxy_essential_labels")
    rows = proxy_labels(a.genbank)
    with atomic_open(a.out) as fh:
        fh.write("gene_id\tessential\torganism\tproduct\n")
        for tag, label, product in rows:
            fh.write(f"{tag}\t{label}\t{a.organism}\t{product}\n")
    pos = sum(r[1] for r in rows)
    print(f"{len(rows)} genes labelled: {pos} core-essential products, {len(rows) - pos} hypothetical proteins -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
