"""HGVS coding-DNA (`c.`) edits applied to a wild-type CDS.

Supported, with c.1 the first base of the CDS given (numbering 1-based, inclusive):
  substitution   c.4A>G
  deletion       c.10del, c.10_12del, c.10_12delATG (the named bases are checked)
  insertion      c.10_11insAT (between two adjacent bases)
  duplication    c.10dup, c.10_12dup
  deletion-insertion  c.10delinsGT, c.10_12delinsGT
  several edits  c.[4A>G;10_12del] (applied together; they must not overlap)
  no change      c.= (the wild type)
Anything else (intronic offsets c.10+1, UTR c.-5 / c.*3, ranges with `?`, protein
`p.` notation, RNA `r.`, alleles on two chromosomes `];[`) is unsupported:
`parse_hgvs` raises `HgvsError` with the reason, and callers list those variants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_POS = r"(\d+)"
_RE_SUB = re.compile(rf"^{_POS}([ACGTacgt])>([ACGTacgt])$")
_RE_DEL = re.compile(rf"^{_POS}(?:_{_POS})?del([ACGTacgt]*)$")
_RE_DUP = re.compile(rf"^{_POS}(?:_{_POS})?dup([ACGTacgt]*)$")
_RE_INS = re.compile(rf"^{_POS}_{_POS}ins([ACGTacgt]+)$")
_RE_DELINS = re.compile(rf"^{_POS}(?:_{_POS})?delins([ACGTacgt]+)$")


class HgvsError(ValueError):
    """An HGVS string this module does not support, or one that disagrees with the reference."""


@dataclass(frozen=True)
class Edit:
    """Replace reference bases [start, end) (0-based, half-open) by `alt`; start == end is an insertion.

    A duplication keeps its duplicated span [start, end) with `dup=True` until applied.
    """

    start: int
    end: int
    alt: str
    ref: str = ""  # bases the notation names (checked when given)
    dup: bool = False


def _span(m: re.Match) -> tuple[int, int]:
    a = int(m[1])
    b = int(m[2]) if m[2] else a
    if a < 1 or b < a:
        raise HgvsError(f"invalid range {a}_{b}")
    return a - 1, b


def _parse_one(text: str) -> Edit:
    t = text.strip()
    if m := _RE_SUB.match(t):
        p = int(m[1])
        if p < 1:
            raise HgvsError(f"invalid position in {text!r}")
        return Edit(p - 1, p, m[3].upper(), m[2].upper())
    if m := _RE_DELINS.match(t):
        return Edit(*_span(m), m[3].upper())
    if m := _RE_DEL.match(t):
        return Edit(*_span(m), "", m[3].upper())
    if m := _RE_INS.match(t):
        a, b = int(m[1]), int(m[2])
        if b != a + 1:
            raise HgvsError(f"insertion must be between adjacent bases (n_n+1): {text!r}")
        return Edit(a, a, m[3].upper())
    if m := _RE_DUP.match(t):
        return Edit(*_span(m), "", m[3].upper(), dup=True)
    raise HgvsError(f"unsupported HGVS edit {text!r}")


def parse_hgvs(hgvs: str) -> list[Edit]:
    """The edits of one `c.` variant (an empty list for `c.=`)."""
    s = hgvs.strip()
    if ":" in s:  # a reference prefix, e.g. NM_000001.1:c.4A>G
        s = s.split(":", 1)[1]
    if not s.startswith("c."):
        raise HgvsError(f"only coding-DNA 'c.' variants are supported, got {hgvs!r}")
    body = s[2:]
    if body == "=":
        return []
    if body.startswith("["):
        if not body.endswith("]") or "];[" in body or "[" in body[1:]:
            raise HgvsError(f"unsupported allele syntax {hgvs!r}")
        parts = body[1:-1].split(";")
        if any(not p.strip() for p in parts):
            raise HgvsError(f"empty edit in {hgvs!r}")
        return [_parse_one(p) for p in parts]
    return [_parse_one(body)]


def apply_edits(reference: str, edits: list[Edit]) -> str:
    """The mutant sequence: all edits applied together to `reference` (positions refer to the reference)."""
    ref = reference.upper()
    spans: list[Edit] = []
    for e in edits:
        if e.end > len(ref):
            raise HgvsError(f"position c.{e.end} is outside the CDS ({len(ref)} bases)")
        if e.ref and ref[e.start:e.end] != e.ref:
            raise HgvsError(f"reference has {ref[e.start:e.end]!r} at c.{e.start + 1}, the variant names {e.ref!r}")
        spans.append(Edit(e.end, e.end, ref[e.start:e.end]) if e.dup else e)
    spans.sort(key=lambda e: (e.start, e.end))
    for a, b in zip(spans, spans[1:]):
        if b.start < a.end or (a.start == a.end == b.start == b.end):
            raise HgvsError("edits overlap")
    seq = ref
    for e in reversed(spans):
        seq = seq[: e.start] + e.alt + seq[e.end :]
    return seq


def mutate(reference: str, hgvs: str) -> str:
    """`reference` with the variant `hgvs` applied (raises HgvsError when unsupported or inconsistent)."""
    return apply_edits(reference, parse_hgvs(hgvs))
