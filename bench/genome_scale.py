"""Genome-scale inference benchmark: boundary export and per-base scoring with 1 and N processes on CPU.

For each command (`dnahnet boundaries --probs`, `dnahnet score --per-base`) and
each process count, one run through `torchrun --nproc-per-node N -m dnahnet_cli`
(1: plain `python -m dnahnet_cli`), writing the browser formats (chunks as
bgzip + tabix, per-base tracks as bigWig). Reported: wall time, bases/s (all
bases of the region, and ACGT bases), scaling efficiency (rate_N / (N x rate_1)),
peak resident memory per process (the highest VmHWM any rank reached, read from
/proc every 0.2 s while it runs), output sizes, and for comparison the plain-text
sizes of the same run (one extra run per command, timed separately). Then
windows per forward pass (`--batch-size`) against throughput for the boundary
export on one process.

    python bench/genome_scale.py --checkpoint CK                       # the whole chr22 (hours on 2 CPU cores)
    python bench/genome_scale.py --checkpoint CK --region chr22:20,000,001-20,200,000 --procs 1 2 --batch-sizes 1 4

Results: <out>/results.json and <out>/report.md (the command line, machine and
date at the top). The script imports no torch itself, so the memory it reports
is the ranks' own.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

DEFAULT_GENOME = Path(os.environ.get("DNAHNET_SHARED_DATA", "/work/shared/data")) / "hg19-chr22" / "chr22.fa.gz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def _vm_hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run `cmd`; wall seconds and the peak VmHWM of each process in its tree (polled)."""
    peaks: dict[int, int] = {}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            for pid in [proc.pid, *_descendants(proc.pid)]:
                peaks[pid] = max(peaks.get(pid, 0), _vm_hwm(pid))
            done.wait(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    done.set()
    watcher.join()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}\n{err[-3000:]}")
    # the launcher (torchrun's agent) is not a rank: report the ranks, i.e. the processes that loaded torch models
    ranks = sorted((v for p, v in peaks.items() if p != proc.pid or len(peaks) == 1), reverse=True)
    return {"seconds": seconds, "peak_rss_bytes_max": ranks[0] if ranks else 0, "peak_rss_bytes": ranks,
            "load_before": load_before, "load_after": os.getloadavg()[0],
            "stderr_tail": err.strip().splitlines()[-1:] if err.strip() else []}


def launcher(nproc: int) -> list[str]:
    if nproc == 1:
        return [sys.executable, "-m", "dnahnet_cli"]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port",
            str(free_port()), "-m", "dnahnet_cli"]


def command(kind: str, a, folder: Path, plain: bool, batch_size: int | None = None) -> tuple[list[str], list[Path]]:
    """The CLI arguments of one run and the files it writes."""
    where = ["--region", a.region] if a.region else []
    common = ["--checkpoint", str(a.checkpoint), "--genome", str(a.genome), *where, "--device", "cpu",
              "--shard-bases", str(a.shard_bases)]
    if batch_size is not None:
        common += ["--batch-size", str(batch_size)]
    if kind == "boundaries":
        out, probs = folder / ("chunks.bed" if plain else "chunks.bed.gz"), folder / ("p.bedGraph" if plain else "p.bw")
        return ["boundaries", *common, "--out", str(out), "--probs", str(probs)], [out, probs]
    out, bits = folder / "scores.tsv", folder / ("bits.bedGraph" if plain else "bits.bw")
    return ["score", *common, "--out", str(out), "--per-base", str(bits)], [out, bits]


def sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}


def _bedgraph_bytes(bigwig: Path, digits: int) -> int:
    """Bytes the plain bedGraph writer gives for the values stored in `bigwig` (one line per base, no track line).

    bigWig keeps the float32 the run computed, and the text writers format that same float32, so the
    text is the one a plain-text run writes.
    """
    import numpy as np
    import pyBigWig

    from dnahnet.io.bed import bedgraph_base_lines

    total, bw = 0, pyBigWig.open(str(bigwig))
    try:
        for chrom, length in bw.chroms().items():
            for lo in range(0, length, 2_000_000):
                intervals = bw.intervals(chrom, lo, min(length, lo + 2_000_000)) or ()
                if not intervals:
                    continue
                pos = np.concatenate([np.arange(max(s, lo), e) for s, e, _ in intervals])
                val = np.concatenate([np.full(e - max(s, lo), v, np.float32) for s, e, v in intervals])
                total += len(bedgraph_base_lines(chrom, pos.tolist(), val.astype(np.float64).tolist(), digits))
    finally:
        bw.close()
    return total


def plain_sizes(folder: Path) -> dict[str, int]:
    """Plain-text sizes of a run's binary outputs: bgzip BED decompressed, bigWig written back as bedGraph."""
    import gzip

    out: dict[str, int] = {}
    for p in sorted(folder.iterdir()):
        if p.name.endswith(".bed.gz"):
            with gzip.open(p, "rb") as fh:
                out[p.name[:-3]] = sum(len(block) for block in iter(lambda: fh.read(1 << 20), b""))
        elif p.suffix == ".bw":
            out[p.stem + ".bedGraph"] = _bedgraph_bytes(p, 6 if p.stem == "p" else 9)
    return out


def region_bases(a) -> tuple[int, int]:
    """(bases, ACGT bases) of the benchmarked region."""
    from dnahnet.data.genome import Genome  # light: pysam and numpy, not torch

    g = Genome(a.genome)
    if a.region:
        chrom, rest = a.region.replace(",", "").split(":")
        s, e = (int(x) for x in rest.split("-"))
        s -= 1
    else:
        chrom, s, e = g.names[0], 0, g.sizes[g.names[0]]
    spans = [(c, 0, g.sizes[c]) for c in g.names] if not a.region else [(chrom, s, e)]
    total = sum(b - x for _, x, b in spans)
    n = sum(g.n_count(c, x, b) for c, x, b in spans)
    return total, total - n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--genome", default=str(DEFAULT_GENOME))
    ap.add_argument("--region", default=None, help="chr:start-end (1-based); default: the whole genome")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batch-sizes", type=int, nargs="*", default=[1, 2, 4, 8])
    ap.add_argument("--commands", nargs="+", default=["boundaries", "score"], choices=["boundaries", "score"])
    ap.add_argument("--shard-bases", type=int, default=None,
                    help="default: 1,000,000 (the CLI's), less for small regions so every process gets 8+ shards")
    ap.add_argument("--plain", choices=["run", "convert"], default="run",
                    help="plain-text sizes: 'run' times one extra plain-text run per command; 'convert' writes the "
                         "1-process binary outputs back as plain text with the same writers (sizes only, no timing)")
    ap.add_argument("--sweep-region", default=None,
                    help="chr:start-end for the --batch-sizes sweep (default: the benchmarked region)")
    ap.add_argument("--out", default="bench/results/genome_scale")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread per rank: N processes use N cores
    bases, acgt = region_bases(a)
    if a.shard_bases is None:
        a.shard_bases = max(10_000, min(1_000_000, bases // (8 * max(a.procs))))
    rows, sweep = [], []
    for kind in a.commands:
        base_rate = None
        for nproc in a.procs:
            folder = out / f"{kind}-{nproc}p"
            folder.mkdir(exist_ok=True)
            args, _ = command(kind, a, folder, plain=False)
            print(f"{kind}, {nproc} process(es) ...", file=sys.stderr, flush=True)
            m = run_measured(launcher(nproc) + args, env)
            rate = bases / m["seconds"]
            base_rate = base_rate or (rate if nproc == 1 else None)
            rows.append({"command": kind, "processes": nproc, "bases": bases, "acgt_bases": acgt, **m,
                         "bases_per_s": rate, "acgt_bases_per_s": acgt / m["seconds"],
                         "scaling_efficiency": rate / (nproc * base_rate) if base_rate else None,
                         "outputs": sizes(folder), "argv": launcher(nproc)[1:] + args})
        if a.plain == "convert":
            rows.append({"command": kind, "processes": 1, "plain_text": "converted", "bases": bases,
                         "outputs": plain_sizes(out / f"{kind}-{min(a.procs)}p")})
            continue
        folder = out / f"{kind}-plain"
        folder.mkdir(exist_ok=True)
        args, _ = command(kind, a, folder, plain=True)
        m = run_measured(launcher(1) + args, env)
        rows.append({"command": kind, "processes": 1, "plain_text": True, "bases": bases, **m,
                     "bases_per_s": bases / m["seconds"], "outputs": sizes(folder), "argv": launcher(1)[1:] + args})
    sweep_args = argparse.Namespace(**{**vars(a), "region": a.sweep_region or a.region})
    sweep_bases = region_bases(sweep_args)[0]
    for bs in a.batch_sizes:
        folder = out / f"batch-{bs}"
        folder.mkdir(exist_ok=True)
        args, _ = command("boundaries", sweep_args, folder, plain=False, batch_size=bs)
        m = run_measured(launcher(1) + args, env)
        sweep.append({"batch_size": bs, "seconds": m["seconds"], "bases_per_s": sweep_bases / m["seconds"],
                      "peak_rss_bytes_max": m["peak_rss_bytes_max"], "region": sweep_args.region or "whole genome",
                      "load_before": m["load_before"], "load_after": m["load_after"]})
    meta = {"command": "python bench/genome_scale.py " + shlex.join(sys.argv[1:] if argv is None else argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs", "genome": a.genome,
            "region": a.region or "whole genome", "checkpoint": a.checkpoint, "shard_bases": a.shard_bases,
            "sweep_region": a.sweep_region or a.region or "whole genome"}
    (out / "results.json").write_text(json.dumps({"meta": meta, "runs": rows, "batch_sweep": sweep}, indent=1))
    (out / "report.md").write_text(report(meta, rows, sweep))
    print(report(meta, rows, sweep))
    return 0


def report(meta: dict, rows: list[dict], sweep: list[dict]) -> str:
    mib = 2**20
    lines = [f"# Genome-scale inference ({meta['region']})", "", f"`{meta['command']}`", "",
             f"{meta['machine']}, {meta['date']}; checkpoint `{meta['checkpoint']}`; --shard-bases {meta['shard_bases']:,}; "
             "OMP_NUM_THREADS=1 per process.", "",
             "| command | processes | outputs | seconds | bases/s | ACGT bases/s | scaling eff. | peak RSS / process (MiB) | output bytes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        eff = f"{r['scaling_efficiency']:.2f}" if r.get("scaling_efficiency") else "-"
        kind = "plain text" if r.get("plain_text") else "bgzip+tabix / bigWig"
        acgt = f"{r['acgt_bases_per_s']:,.0f}" if "acgt_bases_per_s" in r else "-"
        outs = ", ".join(f"{k} {v:,}" for k, v in r["outputs"].items())
        if r.get("plain_text") == "converted":
            lines.append(f"| {r['command']} | - | plain text (sizes of the same values written as text, not run) "
                         f"| - | - | - | - | - | {outs} |")
            continue
        lines.append(f"| {r['command']} | {r['processes']} | {kind} | {r['seconds']:.1f} | {r['bases_per_s']:,.0f} | {acgt} | "
                     f"{eff} | {r['peak_rss_bytes_max'] / mib:,.0f} | {outs} |")
    if sweep:
        lines += ["", f"Boundary export, one process, windows per forward pass ({meta.get('sweep_region', meta['region'])}):", "",
                  "| --batch-size | seconds | bases/s | peak RSS (MiB) |", "|---|---|---|---|"]
        lines += [f"| {s['batch_size']} | {s['seconds']:.1f} | {s['bases_per_s']:,.0f} | {s['peak_rss_bytes_max'] / mib:,.0f} |"
                  for s in sweep]
    loads = [f"{r['command']} {r['processes']}p {r['load_before']:.1f}->{r['load_after']:.1f}" for r in rows if "load_before" in r]
    loads += [f"batch {s['batch_size']} {s['load_before']:.1f}->{s['load_after']:.1f}" for s in sweep if "load_before" in s]
    if loads:
        lines += ["", "1-minute load average before -> after each run (2 CPUs; above the run's own process count "
                  "means other jobs shared the cores): " + "; ".join(loads) + "."]
    lines += ["", "Peak RSS is polled every 0.2 s from /proc (VmHWM of each rank), so a peak shorter than that "
              "can be missed; wall time includes process start, model load and the merge.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
