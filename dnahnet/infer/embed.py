"""Hidden-state embeddings of DNA sequences: per base, mean-pooled, or per chunk.

**Levels.** Level 0 is the bases. Level k (1..n_routed) is the chunks made by the
k-th router (the `stage == k` entry of `DnaModel.boundaries`). A level-k vector
*covers* the bases from its chunk's start to the next level-k chunk start.

**Which tensor** (`layer`, `stage`; every one is taken after the stack's final RMSNorm):

- `layer="final"` (stage 0 only): the backbone output, the tensor the LM head reads,
  one vector per base, width d_0.
- `layer="encoder", stage=k` (0 <= k < n_routed): the output of the level-k
  encoder, one vector per level-k position (the input of the level-k router), width d_k.
- `layer="main", stage=k` (0 <= k <= n_routed): the output of the level-k H-Net at
  its full width d_k: the innermost isotropic stack's output for k = n_routed, the
  level-k decoder's output for 0 < k < n_routed (the level-(k-1) dechunk layer reads
  its first d_(k-1) dimensions); `main` at stage 0 is the same tensor as `final`.
  For an isotropic model (no router) only stage 0 exists and `encoder` does not.

**Pooling** (each sequence first gets a *per-base view*, (L, d): at each base, the
vector of the level-`stage` position that covers it):

- `pool="none"`: the per-base view itself, a float32 array (L, d) per sequence.
  N bases keep their vectors (they are context, as in scoring).
- `pool="mean"`: the mean of the per-base view over the non-N bases, float32 (n, d)
  for n sequences (a row of NaN for a sequence with no ACGT base). Padding never
  enters (rows are masked and cut to their length).
- `pool="chunks"`: the chunks of router max(stage, 1): a `Chunks` per sequence with
  `starts`/`ends` (0-based half-open base spans that tile [0, L); the starts are the
  router's boundaries, as `DnaModel.boundaries` reports them for a single pass) and
  `vectors` (M, d): for stage >= 1 the level-`stage` vectors themselves, for stage 0
  the mean of the per-base view over each chunk's non-N bases (NaN for an all-N chunk).

**rc=True** (none, mean): the per-base view is averaged with the reverse-complement
strand's view at the mirrored base (the RC strand's chunks differ, so not for chunks).

**Long sequences** go through the same overlapping windows as scoring
(`DnaModel.resolve_windows`, `plan_windows`): each window's first `context` bases only
warm the model up, and the views (and boundaries) of the kept ranges are stitched.
Pooled outputs are accumulated window group by window group, so a 1 Mb sequence
needs memory for one window group, not for the whole sequence. Windowed values equal
a single pass on the first window's range and are close elsewhere (how close depends
on the model's memory; see `dnahnet.infer.boundaries`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from dnahnet.alphabet import N_BYTE, reverse_complement
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.model import pad_batch
from dnahnet.nn.hnet import HNet, HNetLM

LAYERS = ("final", "encoder", "main")
POOLS = ("none", "mean", "chunks")


@dataclass
class Chunks:
    """Chunk vectors of one sequence: vectors (M, d) float32 for bases [starts[i], ends[i])."""

    starts: np.ndarray  # int64
    ends: np.ndarray  # int64
    vectors: np.ndarray  # float32


@dataclass(frozen=True)
class EmbedSpec:
    """A checked (layer, stage, pool) choice and the router whose chunks `pool="chunks"` uses."""

    layer: str
    stage: int
    pool: str

    @property
    def chunk_router(self) -> int:
        return max(self.stage, 1)


def check_spec(net: HNetLM, layer: str, stage: int, pool: str, rc: bool = False) -> EmbedSpec:
    """Validate an embedding request against the model's levels (one-line errors)."""
    n = net.config.n_routed
    if layer not in LAYERS:
        raise DnahnetInputError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    if pool not in POOLS:
        raise DnahnetInputError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if layer == "final" and stage != 0:
        raise DnahnetInputError(f"layer 'final' is the backbone output at stage 0; got stage {stage} (use layer 'main')")
    top = n - 1 if layer == "encoder" else n
    if not 0 <= stage <= top:
        if layer == "encoder" and n == 0:
            raise DnahnetInputError("this isotropic model has no encoder; use layer 'final' or 'main'")
        raise DnahnetInputError(f"stage for layer {layer!r} must be in 0..{top} for this model ({n} routed stages), got {stage}")
    if pool == "chunks" and n == 0:
        raise DnahnetInputError("pool 'chunks' needs a model with routing stages; this model is isotropic")
    if pool == "chunks" and rc:
        raise DnahnetInputError("rc averaging applies to pool 'none' and 'mean' (the RC strand has other chunks)")
    return EmbedSpec(layer, stage, pool)


def _level(net: HNetLM, k: int) -> HNet:
    module = net.backbone
    for _ in range(k):
        module = module.main_network
    return module


def tapped_module(net: HNetLM, spec: EmbedSpec) -> nn.Module:
    """The module whose output is the requested tensor (see the module docstring)."""
    level = _level(net, spec.stage)
    if spec.layer == "encoder":
        return level.encoder
    return level.main_network if level.is_innermost else level.decoder


@contextlib.contextmanager
def _tap(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    store: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _args, out: store.append(out))
    try:
        yield store
    finally:
        handle.remove()


def _chunk_index(routing_masks: list[torch.Tensor], k: int, length: int) -> torch.Tensor:
    """(B, L) index of the level-k position covering each base (level 0: the base itself)."""
    bsz = routing_masks[0].shape[0] if routing_masks else 1
    device = routing_masks[0].device if routing_masks else None
    idx = torch.arange(length, device=device).expand(bsz, length)
    for j in range(k):
        within = torch.cumsum(routing_masks[j].long(), dim=1) - 1  # position at level j -> index at level j+1
        idx = torch.gather(within, 1, idx.clamp(min=0, max=within.shape[1] - 1))
    return idx.clamp(min=0)


def _boundary_flags(routing_masks: list[torch.Tensor], k: int, length: int) -> torch.Tensor:
    """(B, L) bool: bases where a level-k chunk starts (router k's boundaries in base coordinates)."""
    flags = routing_masks[0][:, :length]
    for j in range(1, k):
        within = torch.cumsum(flags.long(), dim=1) - 1
        nxt = torch.gather(routing_masks[j], 1, within.clamp(min=0, max=routing_masks[j].shape[1] - 1))
        flags = flags & nxt
    return flags


def per_base_view(
    net: HNetLM, ids: torch.Tensor, mask: torch.Tensor | None, spec: EmbedSpec
) -> tuple[torch.Tensor, torch.Tensor | None, list]:
    """(view (B, L, d), chunk-start flags (B, L) of the chunk router or None, routing) for one batch.

    Differentiable (fine-tuning uses it); runs the embedding and backbone but not the LM head.
    """
    with _tap(tapped_module(net, spec)) as store:
        _, routing = net.backbone(net.embeddings(ids), mask)
    tensor = store[-1]
    masks = [r.boundary_mask for r in routing]
    length = ids.shape[1]
    if spec.stage == 0:
        view = tensor
    else:
        idx = _chunk_index(masks, spec.stage, length)
        view = torch.gather(tensor, 1, idx[..., None].expand(-1, -1, tensor.shape[-1]))
    flags = _boundary_flags(masks, spec.chunk_router, length) if spec.pool == "chunks" else None
    return view, flags, routing


def masked_mean(view: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean over positions with weight 1 (valid, non-N), (B, d); NaN where a row has none."""
    w = weights.to(view.dtype)
    total = (view * w[..., None]).sum(1)
    return total / w.sum(1, keepdim=True)


# ----- streaming over prepared rows ------------------------------------------------------------
@dataclass
class _Block:
    """Per-base view of bases [start, start + len(view)) of sequence `index`; `last` ends it."""

    index: int
    start: int
    view: np.ndarray  # (n, d) float32
    flags: np.ndarray | None  # (n,) bool chunk starts, pool="chunks" only
    last: bool


class _Embedder:
    def __init__(self, model, spec: EmbedSpec, rc: bool, window: int | None, context: int, batch_size: int) -> None:
        self.model, self.spec, self.rc = model, spec, rc
        self.window, self.context, self.batch_size = window, context, batch_size

    @torch.inference_mode()
    def views(self, rows: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per-base view (and chunk flags) of prepared rows, right-padded into one batch."""
        model = self.model
        ids_t, mask, lengths = pad_batch(rows, model.device)
        with model.autocast():
            view, flags, _ = per_base_view(model.net, ids_t, mask, self.spec)
        view = view.float().cpu().numpy()
        flags_np = None if flags is None else flags.cpu().numpy()
        return [(view[i, :n], None if flags_np is None else flags_np[i, :n]) for i, n in enumerate(lengths)]

    def _rc_views(self, rows: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        out = self.views(list(rows) + [reverse_complement(r) for r in rows]) if self.rc else self.views(rows)
        if not self.rc:
            return out
        n = len(rows)
        return [((out[i][0] + out[n + i][0][::-1]) * np.float32(0.5), None) for i in range(n)]

    def blocks(self, arrays: Iterable[np.ndarray]) -> Iterator[_Block]:
        from dnahnet.infer.model import PENDING_BATCHES

        pending: list[tuple[int, np.ndarray]] = []
        for index, arr in enumerate(arrays):
            if self.window is not None and len(arr) > self.window:
                yield from self._short(pending)
                pending = []
                yield from self._windows(index, arr)
            else:
                pending.append((index, arr))
                if len(pending) >= self.batch_size * PENDING_BATCHES:
                    yield from self._short(pending)
                    pending = []
        yield from self._short(pending)

    def _short(self, items: list[tuple[int, np.ndarray]]) -> Iterator[_Block]:
        from dnahnet.infer.model import MAX_BATCH_TOKENS

        results: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        live = [(i, a) for i, a in items if len(a)]
        order = sorted(range(len(live)), key=lambda j: len(live[j][1]))
        start = 0
        while start < len(order):
            stop = min(start + self.batch_size, len(order))
            while stop - start > 1 and (stop - start) * len(live[order[stop - 1]][1]) * (2 if self.rc else 1) > MAX_BATCH_TOKENS:
                stop -= 1
            group = [live[j] for j in order[start:stop]]
            for (index, _), res in zip(group, self._rc_views([a for _, a in group])):
                results[index] = res
            start = stop
        d = None
        for index, arr in items:
            if index not in results:  # empty sequence
                d = d or self.width()
                results[index] = (np.zeros((0, d), np.float32), np.zeros(0, bool) if self.spec.pool == "chunks" else None)
            view, flags = results.pop(index)
            yield _Block(index, 0, view, flags, True)

    def width(self) -> int:
        level = _level(self.model.net, self.spec.stage)
        return int(level.d_model)

    def _windows(self, index: int, arr: np.ndarray) -> Iterator[_Block]:
        from dnahnet.infer.model import MAX_BATCH_TOKENS, plan_windows

        length = len(arr)
        plan = plan_windows(length, self.window, self.context, self.model.window_align)
        per_pass = max(1, min(self.batch_size, MAX_BATCH_TOKENS // (self.window * (2 if self.rc else 1))))
        rc_arr = reverse_complement(arr) if self.rc else None
        for g in range(0, len(plan), per_pass):
            group = plan[g : g + per_pass]
            a, b = group[0].count_start, group[-1].count_end
            view, flags = self._stitch(arr, group, a, b)
            if self.rc:
                ra, rb = length - b, length - a
                rc_group = [w for w in plan if w.count_end > ra and w.count_start < rb]
                view = (view + self._stitch(rc_arr, rc_group, ra, rb)[0][::-1]) * np.float32(0.5)
            yield _Block(index, a, view, flags, b == length)

    def _stitch(self, arr: np.ndarray, group, a: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        res = self.views([arr[w.start : w.end] for w in group])
        view = np.empty((b - a, res[0][0].shape[1]), dtype=np.float32)
        flags = np.empty(b - a, dtype=bool) if self.spec.pool == "chunks" else None
        for w, (v, f) in zip(group, res):
            lo, hi = max(w.count_start, a), min(w.count_end, b)
            view[lo - a : hi - a] = v[lo - w.start : hi - w.start]
            if flags is not None:
                flags[lo - a : hi - a] = f[lo - w.start : hi - w.start]
        return view, flags


class _ChunkAccumulator:
    """Chunk vectors and spans of one sequence, fed block by block in base order."""

    def __init__(self, d: int, mean_of_bases: bool) -> None:
        self.mean_of_bases = mean_of_bases
        self.starts: list[np.ndarray] = []
        self.vectors: list[np.ndarray] = []
        self.open_sum = np.zeros(d, np.float64)  # level 0: running sum/count of the chunk still open
        self.open_count = 0
        self.sums: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []

    def feed(self, start: int, view: np.ndarray, flags: np.ndarray, is_base: np.ndarray) -> None:
        pos = np.flatnonzero(flags)
        self.starts.append(pos + start)
        if not self.mean_of_bases:
            self.vectors.append(view[pos])
            return
        # Segment sums: bases before the first boundary of this block belong to the open chunk.
        seg = np.cumsum(flags)  # 0 = the open chunk, j = the j-th chunk starting in this block
        w = is_base.astype(np.float64)
        sums = np.zeros((len(pos) + 1, view.shape[1]), np.float64)
        np.add.at(sums, seg, view.astype(np.float64) * w[:, None])
        counts = np.bincount(seg, weights=w, minlength=len(pos) + 1)
        self.open_sum += sums[0]
        self.open_count += counts[0]
        for j in range(1, len(pos) + 1):
            self.sums.append(self.open_sum)
            self.counts.append(np.array(self.open_count))
            self.open_sum, self.open_count = sums[j], counts[j]

    def result(self, length: int, d: int) -> Chunks:
        starts = np.concatenate(self.starts) if self.starts else np.zeros(0, np.int64)
        ends = np.append(starts[1:], length).astype(np.int64)
        if not self.mean_of_bases:
            vectors = np.concatenate(self.vectors) if self.vectors else np.zeros((0, d), np.float32)
        else:
            sums = (self.sums + [self.open_sum])[1:] if len(starts) else []
            counts = (self.counts + [np.array(self.open_count)])[1:] if len(starts) else []
            with np.errstate(invalid="ignore", divide="ignore"):
                vectors = (np.stack(sums) / np.asarray(counts, np.float64)[:, None]).astype(np.float32) if sums else np.zeros((0, d), np.float32)
        return Chunks(starts.astype(np.int64), ends, vectors.astype(np.float32, copy=False))


def iter_embed(
    model,
    seqs: Iterable[str | bytes | np.ndarray],
    layer: str = "final",
    stage: int = 0,
    pool: str = "mean",
    rc: bool = False,
    window: int | None = -1,
    context: int = -1,
    batch_size: int = 16,
    on_bases: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray | Chunks]:
    """Yield one embedding per sequence, in input order, reading `seqs` lazily (see module docstring).

    pool "none": (L, d) float32; "mean": (d,) float32; "chunks": `Chunks`.
    `on_bases(n)` is called as bases are embedded (progress bars).
    """
    spec = check_spec(model.net, layer, stage, pool, rc)
    if batch_size < 1:
        raise DnahnetInputError(f"batch size must be at least 1, got {batch_size}")
    window, context = model.resolve_windows(window, context)
    if window is not None:
        from dnahnet.infer.model import plan_windows

        plan_windows(window + 1, window, context)  # validates window/context early
    arrays: list[np.ndarray] = []

    def prepared() -> Iterator[np.ndarray]:
        for i, raw in enumerate(seqs):
            arr = model.prepare(raw, record=f"#{i + 1}")
            arrays.append(arr)
            yield arr

    embedder = _Embedder(model, spec, rc, window, context, batch_size)
    d = embedder.width()
    state: dict = {}
    for block in embedder.blocks(prepared()):
        arr = arrays[block.index]
        seg = arr[block.start : block.start + len(block.view)]
        if pool == "none":
            state.setdefault("parts", []).append(block.view)
        elif pool == "mean":
            is_base = seg != N_BYTE
            state["sum"] = state.get("sum", 0.0) + block.view[is_base].astype(np.float64).sum(0)
            state["n"] = state.get("n", 0) + int(is_base.sum())
        else:
            if "acc" not in state:
                state["acc"] = _ChunkAccumulator(d, mean_of_bases=spec.stage == 0)
            state["acc"].feed(block.start, block.view, block.flags, seg != N_BYTE)
        if on_bases is not None:
            on_bases(len(block.view))
        if block.last:
            if pool == "none":
                parts = state.get("parts", [])
                yield np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros((0, d), np.float32))
            elif pool == "mean":
                n = state.get("n", 0)
                yield (state["sum"] / n).astype(np.float32) if n else np.full(d, np.nan, np.float32)
            else:
                acc = state.get("acc") or _ChunkAccumulator(d, mean_of_bases=spec.stage == 0)
                yield acc.result(len(arr), d)
            arrays[block.index] = None  # type: ignore[call-overload]  # free the sequence
            state = {}


def embed(
    model,
    seqs: Iterable[str | bytes | np.ndarray],
    layer: str = "final",
    stage: int = 0,
    pool: str = "mean",
    rc: bool = False,
    window: int | None = -1,
    context: int = -1,
    batch_size: int = 16,
) -> np.ndarray | list:
    """Embeddings of `seqs`: pool "mean" -> float32 (n, d); "none" -> list of (L, d); "chunks" -> list of `Chunks`."""
    out = list(iter_embed(model, seqs, layer=layer, stage=stage, pool=pool, rc=rc, window=window, context=context,
                          batch_size=batch_size))
    if pool == "mean":
        return np.stack(out).astype(np.float32) if out else np.zeros((0, _level(model.net, stage).d_model), np.float32)
    return out


def embed_to_file(
    model,
    records: Iterable[tuple[str, np.ndarray | None]],
    out,
    layer: str = "final",
    stage: int = 0,
    pool: str = "mean",
    rc: bool = False,
    window: int | None = -1,
    context: int = -1,
    batch_size: int = 16,
    on_bases: Callable[[int], None] | None = None,
) -> int:
    """Embed (name, sequence) records in order and write them with `dnahnet.io.embeddings`; returns the count.

    A record whose sequence is None (an empty FASTA record) embeds as an empty one:
    a NaN row for "mean", no rows for "none"/"chunks".
    """
    from dnahnet.io.embeddings import embedding_format, write_embeddings

    embedding_format(out)
    check_spec(model.net, layer, stage, pool, rc)
    names: list[str] = []

    def seqs() -> Iterator[np.ndarray]:
        for name, seq in records:
            names.append(name)
            yield np.zeros(0, np.uint8) if seq is None else seq

    rows = list(iter_embed(model, seqs(), layer=layer, stage=stage, pool=pool, rc=rc, window=window, context=context,
                           batch_size=batch_size, on_bases=on_bases))
    d = _level(model.net, stage).d_model
    if pool == "mean":
        arrays = {"embeddings": np.stack(rows) if rows else np.zeros((0, d), np.float32)}
    else:
        mats = [r if pool == "none" else r.vectors for r in rows]
        offsets = np.concatenate([[0], np.cumsum([len(m) for m in mats])]).astype(np.int64)
        arrays = {"embeddings": np.concatenate(mats) if mats else np.zeros((0, d), np.float32), "offsets": offsets}
        if pool == "chunks":
            arrays["starts"] = np.concatenate([r.starts for r in rows]) if rows else np.zeros(0, np.int64)
            arrays["ends"] = np.concatenate([r.ends for r in rows]) if rows else np.zeros(0, np.int64)
    meta = {"model": model.name, "layer": layer, "stage": stage, "pool": pool, "rc": rc,
            "window": model.resolve_windows(window, context)[0], "format": "dnahnet-embeddings-1"}
    write_embeddings(out, names, arrays, meta)
    return len(names)
