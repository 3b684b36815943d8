"""One rule set for matching chromosome names across files: chr22 ↔ 22, chrM ↔ MT ↔ M, NC_1.1 ↔ NC_1.

Annotation, track and VCF files name contigs as their source did; the genome
may not. A name is matched exactly when the genome has it, else by a canonical
key (lower case, no `chr` prefix, no `.N` version suffix, M/MT as `mt`) when
exactly one genome name has that key; otherwise it is unmatched.
"""

from __future__ import annotations

import re
from typing import Iterable

from dnahnet.errors import DnahnetInputError

_VERSION = re.compile(r"\.\d+$")


def canonical_chrom(name: str) -> str:
    """The key two spellings of one contig share (chr22/22, chrM/MT/M, NC_1.1/NC_1)."""
    key = name.lower()
    key = key[3:] if key.startswith("chr") else key
    key = _VERSION.sub("", key)
    return "mt" if key in ("m", "mt") else key


class ChromMatcher:
    """`matcher(name)` -> the genome's name for `name`, or None (cached: cheap per VCF record)."""

    def __init__(self, genome_chroms: Iterable[str]) -> None:
        self.genome = list(dict.fromkeys(genome_chroms))
        self._exact = set(self.genome)
        self._by_key: dict[str, list[str]] = {}
        for g in self.genome:
            self._by_key.setdefault(canonical_chrom(g), []).append(g)
        self._cache: dict[str, str | None] = {}

    def __call__(self, name: str) -> str | None:
        if name not in self._cache:
            candidates = [name] if name in self._exact else self._by_key.get(canonical_chrom(name), [])
            self._cache[name] = candidates[0] if len(candidates) == 1 else None
        return self._cache[name]


def reconcile_chrom_names(
    annotation_chroms: Iterable[str], genome_chroms: Iterable[str], *, file: str | None = None
) -> tuple[dict[str, str], dict]:
    """Map annotation chromosome names onto genome names (chr22↔22, chrM↔MT, NC_1.1↔NC_1).

    Returns (mapping, report); the report lists renamed and unmatched names.
    Raises `DnahnetInputError` naming `file` and examples when nothing matches.
    """
    match = ChromMatcher(genome_chroms)
    annotation = list(dict.fromkeys(annotation_chroms))
    mapping: dict[str, str] = {}
    renamed: dict[str, str] = {}
    unmatched: list[str] = []
    for a in annotation:
        g = match(a)
        if g is None:
            unmatched.append(a)
            continue
        mapping[a] = g
        if g != a:
            renamed[a] = g
    if annotation and not mapping:
        raise DnahnetInputError(
            "no chromosome name matches the genome: annotation has "
            f"{', '.join(annotation[:4])}; genome has {', '.join(match.genome[:4])}",
            file=file,
        )
    report = {
        "matched": len(mapping),
        "renamed": renamed,
        "unmatched": unmatched,
        "genome_without_features": len(set(match.genome) - set(mapping.values())),
    }
    return mapping, report
