"""A loaded checkpoint as a scoring, boundary and generation model.

Conventions shared by every inference output (TSV, bedGraph, BED):

- Scores are log2-probabilities (bits). The model predicts position t from
  positions < t, exactly as it was trained (`logits[t-1]` against `ids[t]`); there
  is no begin-of-sequence byte, so **position 0 is never scored (NaN)**.
- DNA input is normalised (upper case; IUPAC codes other than ACGT become N).
  **N positions are never scored (NaN)** and never counted; they still serve as
  context for later positions, as in training.
- With `rc=True` a position's value is the mean of its forward-strand value and
  the reverse-complement strand's value at the mirrored position (the RC model's
  log-probability of the complement base). A position is scored only when both
  strands score it, so the first and the last position are NaN.
- Long sequences are scored in overlapping windows of `window` positions whose
  first `context` positions only warm the model up (their outputs are dropped);
  sequences no longer than `window` go through one exact pass.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from dnahnet.alphabet import N_BYTE, as_bytes_array, invalid_dna_positions, normalize_dna, reverse_complement
from dnahnet.devices import Precision, resolve_device, resolve_precision  # resolve_device re-exported
from dnahnet.errors import DnahnetInputError
from dnahnet.nn.hnet import HNetLM, HNetOutput

DEFAULT_WINDOW = 32768  # for models whose training length is unknown (no train.json)
DEFAULT_CONTEXT = 4096
AUTO = -1  # window/context: follow the model's training length (window = seq_len, context = seq_len // 2)
MAX_BATCH_TOKENS = 1 << 17  # rows x length per forward pass: bounds logits memory (~128 MiB fp32)
PENDING_BATCHES = 8  # short sequences gathered (in batches) before sorting them by length
LN2 = math.log(2.0)

@dataclass(frozen=True)
class Window:
    """Input positions [start, end) of one forward pass; outputs kept for [count_start, count_end)."""

    start: int
    end: int
    count_start: int
    count_end: int


def plan_windows(length: int, window: int | None, context: int, align: int = 1) -> list[Window]:
    """Overlapping windows whose kept ranges partition [0, length) in order.

    The first window keeps all of its `window` positions; each later one keeps
    `window - context` positions after `context` warm-up positions; the last one
    is moved left to a full `window` (more warm-up). `align` rounds every window
    start down to a multiple (fixed-k chunking counts positions from the start).
    """
    if window is None or length <= window:
        return [Window(0, length, 0, length)]
    if not 1 <= context < window:
        # context >= 1: a window's first position has nothing to condition on, so it is never kept.
        raise DnahnetInputError(f"need 1 <= context < window, got window {window}, context {context}")
    stride = window - context
    windows = [Window(0, window, 0, window)]
    a = window
    while a < length:
        b = min(a + stride, length)
        s = length - window if b == length else a - context
        s = max(0, (s // align) * align)
        windows.append(Window(s, b, a, b))
        a = b
    return windows


@dataclass
class StageBoundaries:
    """Boundaries of one routed stage (1 = outermost), in base coordinates of the input.

    positions/probs: where this stage starts a chunk, and p_t there.
    p_positions/p_values: every position this stage computed p_t for (every base
    for stage 1; the stage-1 chunk starts for stage 2, and so on) and p_t there.
    """

    stage: int
    positions: np.ndarray  # int64
    probs: np.ndarray  # float32
    p_positions: np.ndarray  # int64
    p_values: np.ndarray  # float32


@dataclass
class ScoreBlock:
    """Scores of positions [start, start + len(values)) of input sequence `index`; `last` ends that sequence."""

    index: int
    start: int
    values: np.ndarray  # float32 log2 p, NaN where not scored
    last: bool


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The compute dtype of `--dtype` on `device`: fp32 by default; bf16 on CPU only where the CPU has it natively.

    See `dnahnet.devices.resolve_precision` (CPU bf16 is autocast over fp32 weights).
    """
    p = resolve_precision(dtype, device)
    return p.autocast or p.weights


def load(checkpoint_dir: str | Path, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None,
         compile: bool | str = False) -> "DnaModel":
    """Load a checkpoint folder, fine-tuned run folder or Hub id `org/name[@rev]` for inference.

    Device auto: CUDA if available; fp32 unless asked (`dnahnet.devices.resolve_precision`).
    `compile`: True or "model" compiles the whole backbone, "blocks" each Mamba-2/attention block
    (`dnahnet.nn.compile`; compiled on first use).
    """
    from dnahnet.hub import resolve_checkpoint
    from dnahnet.io.checkpoint import load_model

    name = str(checkpoint_dir)
    checkpoint_dir = resolve_checkpoint(checkpoint_dir)  # a local folder, or a Hub id through the HF cache
    dev = resolve_device(device)
    precision = resolve_precision(dtype, dev)
    net = load_model(checkpoint_dir, device=dev, dtype=precision.weights)
    model = DnaModel(net, name=name, train_seq_len=training_length(checkpoint_dir), precision=precision)
    if compile:
        from dnahnet.nn.compile import compile_layers, describe

        scope = "blocks" if compile == "blocks" else "model"
        model.compiled = describe(scope, compile_layers(net, scope=scope))
    if (Path(checkpoint_dir) / "finetune.json").exists():  # a fine-tuned run folder carries a prediction head
        from dnahnet.finetune.run import load_head

        model.head = load_head(checkpoint_dir)
    return model


def _dtype_name(dtype: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}.get(dtype, str(dtype))


def training_length(checkpoint_dir: str | Path) -> int | None:
    """The window length the checkpoint was trained on (train.json), if recorded."""
    import json

    path = Path(checkpoint_dir) / "train.json"
    try:
        return int(json.loads(path.read_text())["data"]["seq_len"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _mean_of_strands(forward: np.ndarray, rc_mirrored: np.ndarray) -> np.ndarray:
    """Per-position mean of the two strands, NaN unless both are scored."""
    both = np.isfinite(forward) & np.isfinite(rc_mirrored)
    return np.where(both, (forward + rc_mirrored) * np.float32(0.5), np.float32(np.nan)).astype(np.float32)


def pad_batch(rows: Sequence[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor | None, list[int]]:
    """Right-pad byte rows with N into one (B, width) batch; the validity mask only when lengths differ."""
    lengths = [len(r) for r in rows]
    width = max(lengths)
    ids = np.full((len(rows), width), N_BYTE, dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    ids_t = torch.from_numpy(ids).to(device)
    mask = None
    if min(lengths) != width:
        mask = torch.arange(width, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
    return ids_t, mask, lengths


class DnaModel:
    """An `HNetLM` in eval mode with DNA-aware scoring, boundaries and generation."""

    def __init__(
        self, net: HNetLM, name: str = "model", train_seq_len: int | None = None, precision: Precision | None = None
    ) -> None:
        self.net = net.eval()
        self.name = name
        self.train_seq_len = train_seq_len
        self.config = net.config
        param = next(net.parameters())
        self.device = param.device
        self.dtype = param.dtype  # the parameters' dtype (fp32 under CPU bf16 autocast)
        # How forward passes run: every forward of `net` made for this model goes through `autocast()`.
        self.precision = precision or Precision(_dtype_name(param.dtype), param.dtype, None, "the weights' dtype")
        self.head = None  # a `dnahnet.finetune.run.Head` when loaded from a fine-tuned run folder
        self.compiled = ""  # what torch.compile wrapped (`load(compile=...)`), "" when nothing

    @property
    def n_routed(self) -> int:
        return self.config.n_routed

    def autocast(self):
        """The context every forward pass of `net` runs in: bf16 autocast on CPU when asked, else nothing."""
        return self.precision.context(self.device)

    @property
    def window_align(self) -> int:
        """Window starts must be multiples of this for windowed routing to match one pass (fixed-k chunking)."""
        if self.config.fixed_chunk is not None and self.n_routed:
            return self.config.fixed_chunk ** self.n_routed
        return 1

    # ----- input ---------------------------------------------------------------
    @staticmethod
    def prepare(seq: str | bytes | np.ndarray, *, dna: bool = True, record: str | None = None) -> np.ndarray:
        """DNA: check IUPAC and normalise to ACGTN bytes; text: the raw bytes."""
        if isinstance(seq, str) and not dna:
            seq = seq.encode("utf-8")
        try:
            arr = as_bytes_array(seq)
        except UnicodeEncodeError as exc:
            raise DnahnetInputError("sequence is not ASCII", record=record, position=exc.start + 1) from None
        if not dna:
            return arr
        bad = invalid_dna_positions(arr)
        if len(bad):
            ch = chr(arr[bad[0]])
            raise DnahnetInputError(
                f"non-IUPAC character {ch!r} in DNA sequence (position is 1-based)", record=record, position=int(bad[0]) + 1
            )
        return normalize_dna(arr)[0]

    # ----- forward passes ---------------------------------------------------------
    @torch.inference_mode()
    def _forward(self, rows: Sequence[np.ndarray]) -> tuple[HNetOutput, torch.Tensor, list[int]]:
        """Right-pad rows into one batch and run it (mask only when lengths differ)."""
        ids_t, mask, lengths = pad_batch(rows, self.device)
        with self.autocast():
            return self.net(ids_t, mask=mask), ids_t, lengths

    @torch.inference_mode()
    def log2probs(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Raw per-position log2 P(byte_t | bytes_<t) for prepared rows; position 0 NaN, no N masking."""
        out = [np.full(len(r), np.nan, dtype=np.float32) for r in rows]
        live = [i for i, r in enumerate(rows) if len(r) > 1]
        if not live:
            return out
        res, ids, lengths = self._forward([rows[i] for i in live])
        logits = res.logits[:, :-1].float()
        target = ids[:, 1:, None]
        lp = ((logits.gather(-1, target).squeeze(-1) - torch.logsumexp(logits, dim=-1)) / LN2).cpu().numpy()
        for j, i in enumerate(live):
            out[i][1:] = lp[j, : lengths[j] - 1]
        return out

    @torch.inference_mode()
    def boundaries_batch(self, rows: Sequence[np.ndarray]) -> list[list[StageBoundaries]]:
        """Per row, per routed stage: boundaries and p_t mapped to the row's base coordinates."""
        if self.n_routed == 0:
            raise DnahnetInputError("model has no routing stages; it has no boundaries")
        res, _, lengths = self._forward(rows)
        routing = [(r.boundary_mask.cpu().numpy(), r.boundary_prob.float().cpu().numpy()) for r in res.routing]
        result = []
        for b, n in enumerate(lengths):
            coords = np.arange(n, dtype=np.int64)  # stage input position -> base position
            stages = []
            for s, (mask, prob) in enumerate(routing):
                m = len(coords)
                bm, p = mask[b, :m], prob[b, :m].astype(np.float32)
                stages.append(StageBoundaries(s + 1, coords[bm], p[bm], coords, p))
                coords = coords[bm]
            result.append(stages)
        return result

    def resolve_windows(self, window: int | None, context: int) -> tuple[int | None, int]:
        """Turn AUTO into concrete values: scoring windows as long as the training windows.

        Positions then see between half a training window and a whole one of context,
        the range the model was trained on (attention with rotary embeddings does not
        extrapolate far beyond its training length). Unknown length: DEFAULT_WINDOW.
        """
        if window == AUTO:
            window = self.train_seq_len or DEFAULT_WINDOW
            if context == AUTO:
                context = window // 2 if self.train_seq_len else DEFAULT_CONTEXT
        if context == AUTO:
            context = DEFAULT_CONTEXT if window is None else min(DEFAULT_CONTEXT, window // 2)
        return window, context

    # ----- scoring ------------------------------------------------------------------
    def score(
        self,
        seqs: Iterable[str | bytes | np.ndarray],
        batch_size: int = 16,
        rc: bool = False,
        window: int | None = AUTO,
        context: int = AUTO,
        dna: bool = True,
    ) -> list[np.ndarray]:
        """Per-position log2-probabilities (float32) of each sequence; NaN at position 0 and at N.

        Sequences are batched by length (sorted, right-padded, masked; the model is
        causal, so padding never changes a valid position). See the module docstring
        for `rc` and windows. `dna=False` scores raw bytes (text mode; no N, no rc).
        """
        parts: dict[int, list[np.ndarray]] = {}
        for block in self.iter_score(seqs, batch_size=batch_size, rc=rc, window=window, context=context, dna=dna):
            parts.setdefault(block.index, []).append(block.values)
        return [np.concatenate(parts[i]) if len(parts[i]) > 1 else parts[i][0] for i in range(len(parts))]

    def score_long(
        self, seq: str | bytes | np.ndarray, window: int, context: int, rc: bool = False, batch_size: int = 8, dna: bool = True
    ) -> np.ndarray:
        """One sequence in overlapping windows (memory bounded by the window); equals one pass if it fits."""
        return self.score([seq], batch_size=batch_size, rc=rc, window=window, context=context, dna=dna)[0]

    def iter_score(
        self,
        seqs: Iterable[str | bytes | np.ndarray],
        batch_size: int = 16,
        rc: bool = False,
        window: int | None = AUTO,
        context: int = AUTO,
        dna: bool = True,
    ) -> Iterator[ScoreBlock]:
        """Stream `ScoreBlock`s in input order, reading `seqs` lazily.

        Short sequences are gathered (a few batches' worth), sorted by length and
        batched; a sequence longer than `window` is streamed window group by window
        group, so neither the input list nor a long sequence's activations are ever
        held at once.
        """
        window, context = self.resolve_windows(window, context)
        if rc and not dna:
            raise DnahnetInputError("reverse-complement averaging applies to DNA only, not to text mode")
        if batch_size < 1:
            raise DnahnetInputError(f"batch size must be at least 1, got {batch_size}")
        if window is not None:
            plan_windows(window + 1, window, context)  # validates window/context early
        pending: list[tuple[int, np.ndarray]] = []
        for index, raw in enumerate(seqs):
            arr = self.prepare(raw, dna=dna, record=f"#{index + 1}")
            if window is not None and len(arr) > window:
                yield from self._score_short(pending, batch_size, rc, dna)
                pending = []
                yield from self._score_windows(index, arr, batch_size, rc, window, context, dna)
            else:
                pending.append((index, arr))
                if len(pending) >= batch_size * PENDING_BATCHES:
                    yield from self._score_short(pending, batch_size, rc, dna)
                    pending = []
        yield from self._score_short(pending, batch_size, rc, dna)

    def _finish(self, arr: np.ndarray, values: np.ndarray, dna: bool) -> np.ndarray:
        if dna:
            values[arr == N_BYTE] = np.nan
        return values

    def _score_short(self, items: list[tuple[int, np.ndarray]], batch_size: int, rc: bool, dna: bool) -> Iterator[ScoreBlock]:
        if not items:
            return
        order = sorted(range(len(items)), key=lambda i: len(items[i][1]))
        results: dict[int, np.ndarray] = {}
        start = 0
        while start < len(order):
            # Sorted ascending, so the last row of a batch is its longest: shrink until it fits.
            stop = min(start + batch_size, len(order))
            while stop - start > 1 and (stop - start) * len(items[order[stop - 1]][1]) * (2 if rc else 1) > MAX_BATCH_TOKENS:
                stop -= 1
            group = [items[k] for k in order[start:stop]]
            rows = [arr for _, arr in group]
            if rc:
                rows += [reverse_complement(arr) for arr in rows]
            lps = self.log2probs(rows)
            for j, (index, arr) in enumerate(group):
                values = lps[j]
                if rc:
                    values = _mean_of_strands(values, lps[len(group) + j][::-1])
                results[index] = self._finish(arr, values, dna)
            start = stop
        for index, _ in items:
            yield ScoreBlock(index, 0, results[index], True)

    def _score_windows(
        self, index: int, arr: np.ndarray, batch_size: int, rc: bool, window: int, context: int, dna: bool
    ) -> Iterator[ScoreBlock]:
        length = len(arr)
        plan = plan_windows(length, window, context)
        per_pass = max(1, min(batch_size, MAX_BATCH_TOKENS // (window * (2 if rc else 1))))
        rc_arr = reverse_complement(arr) if rc else None
        for g in range(0, len(plan), per_pass):
            group = plan[g : g + per_pass]
            a, b = group[0].count_start, group[-1].count_end
            forward = self._stitch(arr, group, a, b)
            if rc:
                # The same plan on the RC strand, restricted to the mirror of [a, b).
                ra, rb = length - b, length - a
                rc_group = [w for w in plan if w.count_end > ra and w.count_start < rb]
                mirrored = self._stitch(rc_arr, rc_group, ra, rb)[::-1]
                forward = _mean_of_strands(forward, mirrored)
            yield ScoreBlock(index, a, self._finish(arr[a:b], forward, dna), b == length)

    def _stitch(self, arr: np.ndarray, group: list[Window], a: int, b: int) -> np.ndarray:
        """Scores of [a, b) from the kept parts of `group`'s windows over `arr`."""
        lps = self.log2probs([arr[w.start : w.end] for w in group])
        out = np.empty(b - a, dtype=np.float32)
        for w, lp in zip(group, lps):
            lo, hi = max(w.count_start, a), min(w.count_end, b)
            out[lo - a : hi - a] = lp[lo - w.start : hi - w.start]
        return out

    # ----- embeddings and predictions ----------------------------------------------------
    def embed(
        self,
        seqs: Iterable[str | bytes | np.ndarray],
        layer: str = "final",
        stage: int = 0,
        pool: str = "mean",
        rc: bool = False,
        window: int | None = AUTO,
        context: int = AUTO,
        batch_size: int = 16,
    ):
        """Hidden-state embeddings: pool "mean" -> float32 (n, d); "none" -> list of (L, d); "chunks" -> list of Chunks.

        `dnahnet.infer.embed` documents exactly which tensor each layer/stage/pool returns.
        """
        from dnahnet.infer.embed import embed

        return embed(self, seqs, layer=layer, stage=stage, pool=pool, rc=rc, window=window, context=context, batch_size=batch_size)

    def predict(self, seqs: Iterable[str | bytes | np.ndarray], batch_size: int = 16) -> np.ndarray:
        """Predictions of a fine-tuned run folder: P(label 1) for classification, the value for regression."""
        if self.head is None:
            raise DnahnetInputError(f"{self.name} is a pretrained checkpoint, not a fine-tuned run (no finetune.json); "
                                    "make one with `dnahnet finetune`")
        return self.head.predict(self, seqs, batch_size=batch_size)

    # ----- boundaries -----------------------------------------------------------------
    def boundaries(self, seq: str | bytes | np.ndarray) -> list[StageBoundaries]:
        """Per routed stage (outer first): chunk starts and p_t, in the sequence's base coordinates.

        One forward pass over the whole sequence (for chromosomes use
        `dnahnet.infer.boundaries.export_boundaries`, which windows). Boundaries
        are reported as the model makes them, N positions included.
        """
        arr = self.prepare(seq)
        if len(arr) == 0:
            if self.n_routed == 0:
                raise DnahnetInputError("model has no routing stages; it has no boundaries")
            empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
            return [StageBoundaries(s + 1, empty_i, empty_f, empty_i, empty_f) for s in range(self.n_routed)]
        return self.boundaries_batch([arr])[0]

    # ----- generation -------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self,
        prompt: str | bytes = "",
        n: int = 100,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        return_boundaries: bool = False,
        alphabet: str | None = "ACGT",
    ) -> str | tuple[str, list[StageBoundaries]]:
        """Sample `n` bytes after `prompt` through the incremental caches; returns prompt + continuation.

        Prefill runs the prompt through one forward pass that fills every cache, then
        each new byte is one `step()`. Temperature 0 is greedy (argmax). Sampling is
        restricted to `alphabet` (ACGT by default; None = all 256 bytes, text models).
        With no prompt the first base is drawn uniformly from the alphabet: the model
        conditions every prediction on at least one byte. With `return_boundaries`,
        also the per-stage boundaries of the whole returned sequence, as decided
        while generating.
        """
        if n < 0:
            raise DnahnetInputError(f"n must be >= 0, got {n}")
        if temperature < 0 or not math.isfinite(temperature):
            raise DnahnetInputError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise DnahnetInputError(f"top-k must be >= 1, got {top_k}")
        if return_boundaries and self.n_routed == 0:
            raise DnahnetInputError("model has no routing stages; it has no boundaries")
        if alphabet is not None and (not alphabet or not alphabet.isascii()):
            raise DnahnetInputError(f"alphabet must be non-empty ASCII, got {alphabet!r}")
        dna = alphabet is not None and set(alphabet) <= set("ACGTN")
        ids = self.prepare(prompt, dna=dna, record="prompt").astype(np.int64)
        allowed = torch.arange(256) if alphabet is None else torch.tensor(list(alphabet.encode("ascii")))
        gen = torch.Generator().manual_seed(seed if seed is not None else secrets.randbits(63))
        if len(ids) == 0:
            if n == 0:
                return ("", self._empty_boundaries()) if return_boundaries else ""
            ids = allowed[torch.randint(len(allowed), (1,), generator=gen)].numpy()
            n -= 1
        total = len(ids) + n
        cache = self.net.allocate_inference_cache(1, total, dtype=self.dtype)
        prompt_t = torch.from_numpy(ids)[None].to(self.device)
        with self.autocast():
            out = self.net(prompt_t, cache=cache)
        logits = out.logits[0, -1].float().cpu()
        tracks = self._prefill_tracks(out) if return_boundaries else None
        seq = list(ids.tolist())
        for i in range(n):
            nxt = self._sample(logits, allowed, temperature, top_k, gen)
            seq.append(nxt)
            if i < n - 1 or return_boundaries:
                with self.autocast():
                    logits = self.net.step(torch.tensor([[nxt]], device=self.device), cache)[0, -1].float().cpu()
                if tracks is not None:
                    self._step_tracks(tracks, cache.last_routing, len(seq) - 1)
        text = bytes(seq).decode("latin-1")
        if not return_boundaries:
            return text
        return text, [self._track_to_stage(s, t) for s, t in enumerate(tracks)]

    @staticmethod
    def _sample(logits: torch.Tensor, allowed: torch.Tensor, temperature: float, top_k: int | None, gen: torch.Generator) -> int:
        sub = logits[allowed]
        if temperature == 0:
            return int(allowed[int(torch.argmax(sub))])
        sub = sub / temperature
        if top_k is not None and top_k < len(sub):
            kth = torch.topk(sub, top_k).values[-1]
            sub = sub.masked_fill(sub < kth, float("-inf"))
        probs = torch.softmax(sub.double(), dim=-1)
        return int(allowed[int(torch.multinomial(probs, 1, generator=gen))])

    def _empty_boundaries(self) -> list[StageBoundaries]:
        empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
        return [StageBoundaries(s + 1, empty_i, empty_f, empty_i, empty_f) for s in range(self.n_routed)]

    def _prefill_tracks(self, out: HNetOutput) -> list[dict[str, list]]:
        """Per stage, lists of (p_positions, p_values, is_boundary) from the prompt's forward pass."""
        tracks = []
        coords = np.arange(out.logits.shape[1])
        for r in out.routing:
            bm = r.boundary_mask[0, : len(coords)].cpu().numpy()
            p = r.boundary_prob[0, : len(coords)].float().cpu().numpy()
            tracks.append({"pos": list(coords), "p": list(p), "b": list(bm)})
            coords = coords[bm]
        return tracks

    @staticmethod
    def _step_tracks(tracks: list[dict[str, list]], routing: list, position: int) -> None:
        """Record a step's decisions; stage s+1 decides only where stage s started a chunk."""
        for track, r in zip(tracks, routing):
            b = bool(r.boundary_mask[0])
            track["pos"].append(position)
            track["p"].append(float(r.boundary_prob[0]))
            track["b"].append(b)
            if not b:
                break

    @staticmethod
    def _track_to_stage(stage: int, track: dict[str, list]) -> StageBoundaries:
        pos = np.asarray(track["pos"], dtype=np.int64)
        p = np.asarray(track["p"], dtype=np.float32)
        b = np.asarray(track["b"], dtype=bool)
        return StageBoundaries(stage + 1, pos[b], p[b], pos, p)
