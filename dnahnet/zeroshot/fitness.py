"""Zero-shot protein variant fitness: log p(mutant CDS) - log p(WT CDS), in bits.

Inputs: a FASTA of wild-type CDSs (c.1 = first base of each record) and a TSV of
variants with a header naming `hgvs` (or `variant`/`mutant`) and optionally
`assay`, `reference` (the FASTA record; default: the assay name if it is a record,
else the only record) and `fitness` (or `DMS_score`). Variants are HGVS `c.` edits
(see `dnahnet.zeroshot.hgvs`); unsupported or inconsistent ones are listed with
their reason, never silently dropped.

Baselines (both oriented so that larger = fitter, i.e. minus the count):
- `aa_changes`: residues of the mutant protein, translated up to its first stop,
  that differ from the wild type at the same position, plus the length difference
  (a premature stop counts every residue it removes);
- `nonsyn_codons`: codons, in the wild-type frame, that differ from the wild type
  and encode a different amino acid (no truncation at stops).
With fitness values: Spearman rho per assay, the macro mean of signed and absolute
rho over assays, the pooled rho, the same for both baselines, and the partial
Spearman correlation of the model score with fitness given the better baseline
(higher macro mean rho), per assay (macro mean) and pooled.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir
from dnahnet.io.fasta import read_fasta
from dnahnet.io.jsonfile import write_json
from dnahnet.io.options import check_int
from dnahnet.io.tables import iter_variant_table
from dnahnet.zeroshot.hgvs import HgvsError, mutate
from dnahnet.zeroshot.stats import partial_spearman, spearman

BASELINES = ("aa_changes", "nonsyn_codons")


def translate(seq: str, to_stop: bool = False) -> str:
    """Standard-code translation of whole codons (X for codons with non-ACGT)."""
    from Bio.Data.CodonTable import standard_dna_table

    table = standard_dna_table.forward_table
    stops = set(standard_dna_table.stop_codons)
    out = []
    for i in range(0, len(seq) - len(seq) % 3, 3):
        codon = seq[i : i + 3]
        aa = "*" if codon in stops else table.get(codon, "X")
        if to_stop and aa == "*":
            break
        out.append(aa)
    return "".join(out)


def aa_changes(wt: str, mut: str) -> int:
    """Residues differing up to the first stop, plus the protein length difference."""
    a, b = translate(wt, to_stop=True), translate(mut, to_stop=True)
    n = min(len(a), len(b))
    return sum(x != y for x, y in zip(a[:n], b[:n])) + abs(len(a) - len(b))


def nonsyn_codons(wt: str, mut: str) -> int:
    """Codons (wild-type frame) that changed and encode a different amino acid; extra/missing codons count."""
    a, b = translate(wt), translate(mut)
    n = min(len(a), len(b))
    return sum(x != y for x, y in zip(a[:n], b[:n])) + abs(len(a) - len(b))


def read_cds_fasta(path: str | os.PathLike) -> dict[str, str]:
    """Record name -> upper-case wild-type CDS (c.1 = its first base), read by `dnahnet.io.fasta`."""
    return {name: seq.decode("ascii", errors="replace").upper()
            for name, seq in read_fasta(path, what="reference CDS FASTA").items()}


@dataclass
class VariantRow:
    assay: str
    reference: str
    hgvs: str
    fitness: float = math.nan
    mutant: str | None = None
    error: str = ""
    score: float = math.nan
    baselines: dict[str, float] = field(default_factory=dict)


def read_variants(path: str | os.PathLike, references: dict[str, str]) -> list[VariantRow]:
    """The variants TSV (`dnahnet.io.tables`), each row given its reference CDS record."""
    only = next(iter(references)) if len(references) == 1 else None
    rows = []
    for rec in iter_variant_table(path):
        ref = rec.reference or (rec.assay if rec.assay in references else only)
        if ref is None or ref not in references:
            raise DnahnetInputError(
                f"no reference CDS for this variant (give a 'reference' column naming a record of {', '.join(list(references)[:4])})",
                file=str(path), record=f"line {rec.lineno}",
            )
        rows.append(VariantRow(rec.assay or ref, ref, rec.hgvs, rec.fitness))
    return rows


def prepare(rows: list[VariantRow], references: dict[str, str]) -> None:
    """Apply each variant to its reference; set `mutant` and baselines, or `error`."""
    for r in rows:
        try:
            r.mutant = mutate(references[r.reference], r.hgvs)
        except HgvsError as exc:
            r.error = str(exc)
            continue
        wt = references[r.reference]
        r.baselines = {"aa_changes": -float(aa_changes(wt, r.mutant)), "nonsyn_codons": -float(nonsyn_codons(wt, r.mutant))}


def score_rows(model, rows: list[VariantRow], references: dict[str, str], batch_size: int = 16) -> None:
    """score = sum log2 p(mutant) - sum log2 p(WT) for every prepared row (one WT pass per reference)."""
    ok = [r for r in rows if r.mutant is not None]
    wts = sorted({r.reference for r in ok})
    seqs = [references[w] for w in wts] + [r.mutant for r in ok]
    logp = [float(np.nansum(x)) for x in model.score(seqs, batch_size=batch_size)]
    wt_logp = dict(zip(wts, logp[: len(wts)]))
    for r, lp in zip(ok, logp[len(wts):]):
        r.score = lp - wt_logp[r.reference]


def summarize(rows: list[VariantRow]) -> dict:
    """Spearman statistics for the model and the baselines (rows with a score and a finite fitness)."""
    use = [r for r in rows if r.mutant is not None and math.isfinite(r.fitness) and math.isfinite(r.score)]
    if not use:
        return {}
    assays = sorted({r.assay for r in use})
    methods = ("model",) + BASELINES
    value = lambda r, m: r.score if m == "model" else r.baselines[m]  # noqa: E731
    out: dict = {"variants": len(use), "assays": len(assays), "per_assay": {}, "methods": {}}
    for a in assays:
        sub = [r for r in use if r.assay == a]
        fit = np.array([r.fitness for r in sub])
        out["per_assay"][a] = {"n": len(sub), **{m: spearman(np.array([value(r, m) for r in sub]), fit) for m in methods}}
    fit_all = np.array([r.fitness for r in use])
    for m in methods:
        rhos = np.array([out["per_assay"][a][m] for a in assays], dtype=float)
        out["methods"][m] = {
            "macro_rho": float(np.nanmean(rhos)) if np.isfinite(rhos).any() else math.nan,
            "macro_abs_rho": float(np.nanmean(np.abs(rhos))) if np.isfinite(rhos).any() else math.nan,
            "pooled_rho": spearman(np.array([value(r, m) for r in use]), fit_all),
        }
    macro = {b: out["methods"][b]["macro_rho"] for b in BASELINES}
    better = max(BASELINES, key=lambda b: -math.inf if math.isnan(macro[b]) else macro[b])
    partial = [
        partial_spearman(np.array([r.score for r in sub]), np.array([r.fitness for r in sub]), np.array([r.baselines[better] for r in sub]))
        for a in assays
        for sub in [[r for r in use if r.assay == a]]
    ]
    out["partial"] = {
        "given": better,
        "macro": float(np.nanmean(partial)) if np.isfinite(partial).any() else math.nan,
        "pooled": partial_spearman(np.array([r.score for r in use]), fit_all, np.array([r.baselines[better] for r in use])),
    }
    return out


def _fmt(x: float) -> str:
    return "NA" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def run_fitness(model, reference: str | os.PathLike, variants: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int = 16) -> dict:
    """Score every variant; write `variants.tsv`, `unsupported.tsv` and `summary.json` into `out_dir`."""
    check_int(batch_size, "--batch-size")
    out = check_writable_dir(out_dir)
    references = read_cds_fasta(reference)
    rows = read_variants(variants, references)
    prepare(rows, references)
    score_rows(model, rows, references, batch_size=batch_size)
    with atomic_open(out / "variants.tsv") as fh:
        fh.write("assay\treference\thgvs\tfitness\tscore_bits\t" + "\t".join(BASELINES) + "\tstatus\n")
        for r in rows:
            base = "\t".join(_fmt(r.baselines.get(b, math.nan)) for b in BASELINES)
            status = "ok" if r.mutant is not None else "unsupported"
            fh.write(f"{r.assay}\t{r.reference}\t{r.hgvs}\t{_fmt(r.fitness)}\t{_fmt(r.score)}\t{base}\t{status}\n")
    bad = [r for r in rows if r.mutant is None]
    with atomic_open(out / "unsupported.tsv") as fh:
        fh.write("assay\thgvs\treason\n")
        for r in bad:
            fh.write(f"{r.assay}\t{r.hgvs}\t{r.error}\n")
    summary = {"variants": len(rows), "scored": len(rows) - len(bad), "unsupported": len(bad),
               "unsupported_examples": [f"{r.hgvs}: {r.error}" for r in bad[:10]], "stats": summarize(rows)}
    write_json(out / "summary.json", summary)
    return summary


def format_summary(summary: dict) -> list[str]:
    """Human-readable lines; the baselines are always printed next to the model."""
    lines = [f"{summary['scored']} of {summary['variants']} variants scored, {summary['unsupported']} unsupported"]
    lines += [f"  unsupported: {e}" for e in summary["unsupported_examples"]]
    stats = summary["stats"]
    if not stats:
        lines.append("no fitness values: no correlations (baselines aa_changes, nonsyn_codons are in variants.tsv)")
        return lines
    lines.append(f"Spearman rho over {stats['assays']} assay(s), {stats['variants']} variants:")
    for m, v in stats["methods"].items():
        lines.append(f"  {m:14s} macro {_fmt(v['macro_rho'])}  macro |rho| {_fmt(v['macro_abs_rho'])}  pooled {_fmt(v['pooled_rho'])}")
    p = stats["partial"]
    lines.append(f"  partial rho(model, fitness | {p['given']}): macro {_fmt(p['macro'])}  pooled {_fmt(p['pooled'])}")
    return lines
