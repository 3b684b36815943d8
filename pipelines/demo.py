"""The demo: the whole dnahnet workflow on the bundled genome slice, in minutes on a CPU.

1. pretrain the `cpu-small` H-Net on the train split of hg19 chr22:37.4-42.4 Mb;
2. the order-K Markov baseline on the same held-out windows;
3. export chunk boundaries (BED6 + p_t bedGraph) over the held-out test split;
4. map them onto the bundled RefSeq genes/exons/TSS/TES, CpG islands and soft-masked repeats;
5. score the held-out test split (bits per base) next to the Markov model on the same bases.
Then the tracks go onto real hg19 coordinates (`browser/`: bgzip+tabix chunks, bigWig p_t and bits,
RefSeq genes) with `browser/view.html`, an offline page over the test split.

    python -m dnahnet_pipelines.demo [--out runs/demo] [--bases 2500000]
    dnahnet demo (same options; `make demo`)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from dnahnet.errors import DnahnetInputError, report_input_error
from dnahnet.io.atomic import atomic_open, check_writable_dir
from dnahnet.perf.allocator import keep_freed_memory

DEMO_BASES = 2_500_000


def run_demo(out: str | Path = "runs/demo", bases: int = DEMO_BASES, seed: int = 0, log=print, on_step=None,
             command: str | None = None) -> dict:
    """Run every step; write summary.json and summary.md into `out`; return the summary.

    `on_step(trainer, metrics)` is called after every training step (progress display);
    `command` is the command line recorded in summary.json.
    """
    from dnahnet.analysis.report import annotate, headline_table
    from dnahnet.data.baseline import markov_baseline
    from dnahnet.data.demo import demo_annotation_paths, demo_genome_path, demo_manifest
    from dnahnet.data.genome import Genome
    from dnahnet.data.intervals import Interval
    from dnahnet.infer.boundaries import export_boundaries
    from dnahnet.infer.fasta_input import InputRecord
    from dnahnet.infer.model import load
    from dnahnet.infer.scoring import score_to_tsv
    from dnahnet.train import checkpoint as ckpt
    from dnahnet.train.trainer import pretrain, run_configs

    out = check_writable_dir(out)
    genome_path = demo_genome_path()
    genome = Genome(genome_path)
    started = time.perf_counter()

    log(f"[1/5] pretraining cpu-small on {genome_path.name} for {bases:,} bases")
    model_cfg, train_cfg, data_cfg = run_configs("cpu-small", train={"bases": bases, "seed": seed}, data={"seed": seed})
    trainer = pretrain(model_cfg, train_cfg, data_cfg, out / "train", overwrite=True, on_step=on_step)
    getattr(on_step, "stop", lambda: None)()  # close a live progress display before the next steps print
    evals = [m for m in trainer.history if "eval_bits_per_base" in m]
    final = evals[-1]
    train_bases = trainer.step * train_cfg.tokens_per_step

    log("[2/5] order-K Markov baseline on the same held-out windows")
    markov = markov_baseline(str(genome_path), data_cfg, order=None, max_order=10)

    test = demo_manifest()["splits"]["intervals"]["test"][0]
    chrom, start, end = test[0], int(test[1]), int(test[2])
    checkpoint = ckpt.find_checkpoint(out / "train")
    model = load(checkpoint, device="cpu")
    log(f"[3/5] boundaries over the held-out test split {chrom}:{start}-{end}")
    t0 = time.perf_counter()
    export = export_boundaries(model, genome, [(chrom, start, end)], out / "boundaries.bed", out / "boundaries.p.bedGraph")
    export_s = time.perf_counter() - t0

    log("[4/5] boundaries against RefSeq tracks, CpG islands and soft-masked repeats")
    annotation = annotate(out / "boundaries.bed", list(demo_annotation_paths().values()), genome_path, out / "annotate",
                          probs_bedgraph=out / "boundaries.p.bedGraph", seed=seed)

    log("[5/5] scoring the held-out test split")
    seq = genome.fetch_normalized(chrom, start, end)[0]
    t0 = time.perf_counter()
    scores = score_to_tsv(model, [InputRecord(f"{chrom}:{start}-{end}", seq, end - start, chrom, start)],
                          out / "scores.tsv", per_base=out / "scores.per_base.bedGraph")
    score_s = time.perf_counter() - t0
    markov_test = markov.model.bits_per_base([Interval(chrom, start, end)], genome)
    browser = _browser_tracks(out, demo_manifest()["sequence"], chrom, start, end, export.probs, demo_annotation_paths())
    log(f"browser tracks on hg19 coordinates and a page to view them: {browser['view']}")

    summary = {
        "command": command,
        "genome": str(genome_path),
        "checkpoint": str(checkpoint),
        "train": {
            "bases": train_bases, "steps": trainer.step, "seconds": trainer.elapsed,
            "bases_per_s": train_bases / trainer.elapsed, "precision": trainer.precision.describe(),
            "valid_bits_per_base": final["eval_bits_per_base"],
            "valid_windows": f"{data_cfg.eval_windows} x {data_cfg.seq_len}",
            "compression": final.get("eval_compression"), "target_ratio": model_cfg.stage_target_ratios(),
        },
        "markov_valid": {"order": markov.order, "bits_per_base": markov.bits_per_base},
        "test_region": f"{chrom}:{start}-{end}",
        "test_bits_per_base": scores.bits_per_position, "test_scored_bases": scores.scored_positions,
        "markov_test_bits_per_base": markov_test,
        "boundaries": {"chunks": export.chunks, "bases": export.bases, "seconds": export_s,
                       "bases_per_s": export.bases / export_s},
        "scoring": {"seconds": score_s, "bases_per_s": (end - start) / score_s},
        "annotate": str(out / "annotate" / "report.md"),
        "browser": browser,
        "total_seconds": time.perf_counter() - started,
    }
    with atomic_open(out / "summary.json") as fh:
        json.dump(summary, fh, indent=2)
    text = summary_markdown(summary, headline_table(annotation))
    with atomic_open(out / "summary.md") as fh:
        fh.write(text)
    log(text)
    return summary


HG19_CHR22_LENGTH = 51_304_566  # UCSC hg19 chrom.sizes (= the .fai of the shared hg19 chr22)


def _browser_tracks(out: Path, seq: dict, chrom: str, start: int, end: int, probs: list[str], annotation: dict) -> dict:
    """The demo's tracks moved from the slice onto hg19 (offset from data_manifests/demo.json) and a view page."""
    from dnahnet.io.viewer import browser_bundle

    hg19, offset = seq["source_chrom"], int(seq["offset"])
    return browser_bundle(out / "browser", chunks=out / "boundaries.bed", probs=probs,
                          per_base=out / "scores.per_base.bedGraph",
                          annotations={k: annotation[k] for k in ("RefSeqGene", "RefSeqExon", "CpGIsland")},
                          chrom_map={chrom: (hg19, offset)}, sizes={hg19: HG19_CHR22_LENGTH},
                          region=(hg19, start + offset, end + offset), title="dnahnet demo: held-out test split, hg19")


def summary_markdown(s: dict, headline: str) -> str:
    t = s["train"]
    comp = ", ".join(f"{c:.2f}" for c in t["compression"] or [])
    target = ", ".join(f"{c:g}" for c in t["target_ratio"])
    lines = [
        "# dnahnet demo",
        "",
        f"cpu-small H-Net trained on {t['bases']:,} bases ({t['steps']} steps) in {t['seconds']:.0f} s "
        f"= {t['bases_per_s']:,.0f} bases/s" + (f", in {t['precision']}" if "precision" in t else "")
        + f". Checkpoint: `{s['checkpoint']}`.",
        "",
        "| held-out set | dnahnet cpu-small | Markov (best order, fitted on train) |",
        "|---|---|---|",
        f"| valid windows ({t['valid_windows']}) | {t['valid_bits_per_base']:.4f} bits/base | "
        f"{s['markov_valid']['bits_per_base']:.4f} (order {s['markov_valid']['order']}) |",
        f"| test split {s['test_region']} ({s['test_scored_bases']:,} bases) | {s['test_bits_per_base']:.4f} bits/base | "
        f"{s['markov_test_bits_per_base']:.4f} |",
        "",
        f"Realised compression L/M: {comp} (target {target}).",
        f"Boundary export: {sum(s['boundaries']['chunks']):,} chunks over {s['boundaries']['bases']:,} bases, "
        f"{s['boundaries']['bases_per_s']:,.0f} bases/s; scoring {s['scoring']['bases_per_s']:,.0f} bases/s.",
        "",
        "## Boundaries vs annotation (held-out test split)",
        "",
        headline,
        "",
        f"Full report: `{s['annotate']}`. Total demo time {s['total_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dnahnet_pipelines.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/demo")
    ap.add_argument("--bases", type=int, default=DEMO_BASES)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        command = "python -m dnahnet_pipelines.demo " + shlex.join(sys.argv[1:] if argv is None else argv)
        run_demo(a.out, a.bases, a.seed, command=command)
    except DnahnetInputError as exc:
        return report_input_error(exc, "demo")
    return 0


if __name__ == "__main__":
    keep_freed_memory()
    sys.exit(main())
