"""Genome-scale runs: regions cut into shards of windows, spread over ranks, merged in genome order.

A run's work is a list of regions (every contig, `--contigs`, `--bed` or
`--region`). Each region is planned into overlapping windows (`plan_windows`, as
for one region) and the windows are cut into shards of consecutive windows. The
plan depends only on the inputs and the options, never on the number of
processes, and a batch never spans two shards, so a shard is computed the same
way (same windows, same batches) whichever rank computes it: the merged outputs
of a 1-process and an N-process run are byte-identical.

Parts: shard i's outputs go into `<parts>/<i>/`, written into a temporary folder
and renamed, so a part is complete or absent. `manifest.json` in the parts
folder records every option that changes a part; a restart with the same command
skips the shards whose part exists, and a restart with other options is refused
naming the first option that differs. Rank 0 merges the parts in shard order
(genome order) into the final outputs, atomically, then removes the parts folder.

Under torchrun (RANK/WORLD_SIZE set), `dnahnet.distributed.setup` joins
the process group (gloo on CPU, NCCL on GPUs); rank r takes shards r, r + N, ...
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from dnahnet.distributed import DistEnv
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.model import Window, plan_windows
from dnahnet.io.atomic import atomic_open, check_writable_dir

DEFAULT_SHARD_BASES = 1_000_000  # kept bases per shard: restart granularity and unit of work per rank
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Region:
    """One output unit: `chrom[start:end)` (0-based half-open), named for score tables."""

    chrom: str
    start: int
    end: int
    name: str

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Shard:
    """Consecutive windows of one region (region coordinates); its kept range is [a, b)."""

    index: int
    region: int
    windows: tuple[Window, ...]

    @property
    def a(self) -> int:
        return self.windows[0].count_start

    @property
    def b(self) -> int:
        return self.windows[-1].count_end

    @property
    def bases(self) -> int:
        return self.b - self.a


# ------------------------------------------------------------------ choosing regions


def split_names(values: Sequence[str] | None) -> list[str]:
    """`--contigs a,b --contigs c` -> [a, b, c]."""
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


def select_regions(genome, *, regions: Sequence[str] | None = None, bed=None, contigs: Sequence[str] | None = None) -> list[Region]:
    """The regions of a run: `--region`s, the intervals of a `--bed`, `--contigs`, or every contig.

    Names that are not in the genome are reported all at once (with the genome's
    own names), so a chr1/1 naming mismatch reads as one.
    """
    from dnahnet.infer.fasta_input import iter_bed_intervals, parse_region

    given = [bool(regions), bed is not None, bool(contigs)]
    if sum(given) > 1:
        raise DnahnetInputError("give one of --region, --bed or --contigs (or none for every contig)")
    if contigs:
        names = split_names(contigs)
        missing = [n for n in names if n not in genome.sizes]
        if missing:
            raise DnahnetInputError(_missing_names("--contigs", missing, genome))
        return [Region(n, 0, genome.sizes[n], n) for n in names]
    if regions:
        out = []
        for text in regions:
            chrom, start, end = parse_region(text, genome)
            out.append(Region(chrom, start, end, text.strip() if ":" in text else chrom))
        return out
    if bed is not None:
        _check_bed_contigs(bed, genome)
        return [Region(c, s, e, n or f"{c}:{s}-{e}") for c, s, e, n, _ in iter_bed_intervals(bed, genome)]
    return [Region(n, 0, genome.sizes[n], n) for n in genome.names]


def _missing_names(what: str, missing: list[str], genome) -> str:
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    have = ", ".join(genome.names[:5]) + (", ..." if len(genome.names) > 5 else "")
    return f"{what}: {len(missing)} contig name(s) not in the genome: {shown} (the genome has {have})"


def _check_bed_contigs(bed, genome) -> None:
    """Every contig of the BED that the genome lacks, in one message (before any line-level check)."""
    from dnahnet.io.text import numbered_lines

    if not os.path.isfile(bed):
        raise DnahnetInputError("BED file not found", file=str(bed))
    missing: dict[str, None] = {}
    for _, fields in numbered_lines(bed):
        if fields[0] and fields[0] not in genome.sizes:
            missing[fields[0]] = None
    if missing:
        raise DnahnetInputError(_missing_names("BED", list(missing), genome), file=str(bed))


# ------------------------------------------------------------------ planning


def plan_shards(regions: Sequence[Region], window: int | None, context: int, shard_bases: int = DEFAULT_SHARD_BASES,
                align: int = 1) -> list[Shard]:
    """Every region's windows, cut into shards of about `shard_bases` kept bases (whole windows)."""
    if shard_bases < 1:
        raise DnahnetInputError(f"--shard-bases must be at least 1, got {shard_bases}")
    stride = (window - context) if window is not None else shard_bases
    per_shard = max(1, math.ceil(shard_bases / max(stride, 1)))
    shards: list[Shard] = []
    for r, region in enumerate(regions):
        if region.length == 0:
            continue
        plan = plan_windows(region.length, window, context, align=align)
        for w in range(0, len(plan), per_shard):
            shards.append(Shard(len(shards), r, tuple(plan[w : w + per_shard])))
    return shards


def regions_digest(regions: Sequence[Region]) -> str:
    """A short fingerprint of the region list, for the manifest."""
    text = "\n".join(f"{r.chrom}\t{r.start}\t{r.end}\t{r.name}" for r in regions)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_identity(path: str | os.PathLike) -> dict:
    """Path, size and modification time: a changed input file is a different run."""
    p = Path(path).resolve()
    st = p.stat()
    return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def genome_identity(genome) -> dict:
    """The genome file's identity and its sequence names and sizes."""
    sizes = hashlib.sha256("\n".join(f"{n}\t{genome.sizes[n]}" for n in genome.names).encode()).hexdigest()[:16]
    path = getattr(genome, "path", None)
    return {**(file_identity(path) if path is not None else {}), "sequences": sizes}


def model_identity(model) -> dict:
    """The checkpoint folder and its weights file (a retrained checkpoint is a different run)."""
    weights = Path(model.name) / "model.safetensors"
    return file_identity(weights) if weights.is_file() else {"name": model.name}


# ------------------------------------------------------------------ parts on disk


class PartStore:
    """The parts folder of one run: a manifest and one folder per finished shard."""

    def __init__(self, folder: str | os.PathLike, manifest: dict) -> None:
        self.folder = Path(folder)
        self.manifest = manifest

    def check(self) -> None:
        """Refuse to mix parts of a run with other options (every rank calls this before any write)."""
        path = self.folder / MANIFEST
        if not path.exists():
            return
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            raise DnahnetInputError(f"unreadable run manifest; delete {self.folder} to start over", file=str(path)) from None
        for key in dict.fromkeys([*old, *self.manifest]):
            if old.get(key) != self.manifest.get(key):
                raise DnahnetInputError(
                    f"restart with different options than the interrupted run in {self.folder}: {key} was "
                    f"{_show(old.get(key))}, now {_show(self.manifest.get(key))}; rerun the original command "
                    f"or delete {self.folder} to start over"
                )

    def create(self) -> None:
        """Make the folder and write the manifest if it is not there (rank 0)."""
        check_writable_dir(self.folder)
        if not (self.folder / MANIFEST).exists():
            with atomic_open(self.folder / MANIFEST) as fh:
                json.dump(self.manifest, fh, indent=1, sort_keys=True)

    def part(self, shard: Shard) -> Path:
        return self.folder / f"{shard.index:07d}"

    def done(self, shard: Shard) -> bool:
        return self.part(shard).is_dir()

    @contextlib.contextmanager
    def writing(self, shard: Shard) -> Iterator[Path]:
        """A temporary folder for the shard's files, renamed to the part on success."""
        tmp = Path(tempfile.mkdtemp(prefix=f".{shard.index:07d}.", suffix=".tmp", dir=self.folder))
        try:
            yield tmp
            os.replace(tmp, self.part(shard))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _show(value) -> str:
    return "absent" if value is None else json.dumps(value, sort_keys=True)


def parts_folder(out: str | os.PathLike) -> Path:
    """Where a run writing `out` keeps its parts: `<out>.parts` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


# ------------------------------------------------------------------ running


def _barrier(env: DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()


def _all_ok(env: DistEnv, ok: bool) -> bool:
    """Whether every rank succeeded (one collective; identity alone)."""
    if not env.distributed:
        return ok
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=env.device)  # NCCL reduces CUDA tensors only
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


@dataclass
class RunCounts:
    shards: int = 0
    computed: int = 0  # by this rank, in this call
    reused: int = 0  # parts found from an interrupted run (this rank's)


def run_sharded(
    shards: Sequence[Shard],
    store: PartStore,
    env: DistEnv,
    compute: Callable[[Shard, Path], None],
    merge: Callable[[], None],
    advance: Callable[[int], None] = lambda n: None,
) -> RunCounts:
    """Compute this rank's missing parts, then (rank 0) merge them and remove the parts folder.

    Errors are agreed on by every rank, so one rank's failure never leaves the
    others waiting; the failing rank raises its own error, the others a short one.
    """
    if env.world_size > max(len(shards), 1):
        raise DnahnetInputError(
            f"world size {env.world_size} is larger than the number of shards ({len(shards)}); "
            "use fewer processes or a smaller --shard-bases"
        )
    counts = RunCounts(shards=len(shards))
    error: BaseException | None = None
    try:
        store.check()
    except BaseException as exc:  # noqa: BLE001 - agreed on below, then re-raised
        error = exc
    if _all_ok(env, error is None) and env.is_main:
        try:
            store.create()
        except BaseException as exc:  # noqa: BLE001
            error = exc
    if not _all_ok(env, error is None):
        raise error or DnahnetInputError("another process of this run failed (see its message)")
    try:
        for shard in shards[env.rank :: env.world_size]:
            if store.done(shard):
                counts.reused += 1
            else:
                with store.writing(shard) as folder:
                    compute(shard, folder)
                counts.computed += 1
            advance(shard.bases)
    except BaseException as exc:  # noqa: BLE001
        error = exc
    if not _all_ok(env, error is None):
        raise error or DnahnetInputError("another process of this run failed (see its message)")
    if env.is_main:
        try:
            merge()
            store.remove()
        except BaseException as exc:  # noqa: BLE001
            error = exc
    if not _all_ok(env, error is None):
        raise error or DnahnetInputError("the merging process of this run failed (see its message)")
    return counts


@contextlib.contextmanager
def scratch_store(manifest: dict, env: DistEnv) -> Iterator[PartStore]:
    """Parts in a private temporary folder, for outputs that have no folder (stdout); one process only."""
    if env.distributed:
        raise DnahnetInputError("a run on several processes needs --out FILE (its parts go beside it), not stdout")
    folder = Path(tempfile.mkdtemp(prefix="dnahnet-parts-"))
    try:
        yield PartStore(folder, manifest)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
