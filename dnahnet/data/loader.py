"""Training and evaluation batches, reproducible per (seed, step, rank, world size).

Batch dict (B windows of L bytes):

- `input_ids`  LongTensor (B, L): byte values, upper-case ACGTN for DNA, raw bytes in text mode;
- `loss_mask`  FloatTensor (B, L): 0 at N, `softmask_weight` at soft-masked
  (lower-case) bases, 1 elsewhere; all ones in text mode;
- `softmask`   BoolTensor (B, L): lower-case in the FASTA (repeats).

Next-token convention: the model reads `input_ids` and predicts it shifted by
one, `logits[:, :-1]` against `targets = input_ids[:, 1:]` weighted by
`loss_mask[:, 1:]` (the mask belongs to the target position; position 0 is never
a target because nothing conditions it). Loss = sum(w * CE) / sum(w).

Determinism: step k draws the global samples i = k * G + j, j in [0, G) (G the
global batch); rank r of w takes j in [r * G / w, (r + 1) * G / w), cut into
micro-batches in order. Sample i's window and its reverse-complement coin come
from generators seeded by (seed, i) alone, so step k on rank r is a pure function
of (seed, k, r, w), a resumed run reproduces it, and two ranks together see
exactly the windows one rank sees at the same global batch.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dnahnet.alphabet import N_BYTE, reverse_complement
from dnahnet.data.intervals import Split, Window, WindowSampler, eval_windows, window_rng
from dnahnet.errors import DnahnetInputError

RC_STREAM = 1  # generator stream of the reverse-complement coin (windows use stream 0)


def collate(
    rows: list[tuple[np.ndarray, np.ndarray]], *, is_dna: bool = True, softmask_weight: float = 1.0
) -> dict[str, torch.Tensor]:
    """Stack (ids, softmask) rows into the batch dict described in the module docstring."""
    ids = np.stack([r[0] for r in rows])
    soft = np.stack([r[1] for r in rows])
    if is_dna:
        mask = np.where(ids == N_BYTE, 0.0, np.where(soft, softmask_weight, 1.0)).astype(np.float32)
    else:
        mask = np.ones(ids.shape, dtype=np.float32)
    return {
        "input_ids": torch.from_numpy(ids.astype(np.int64)),
        "loss_mask": torch.from_numpy(mask),
        "softmask": torch.from_numpy(soft),
    }


def reverse_complement_window(ids: np.ndarray, soft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The opposite strand of a normalised window: bases complemented and reversed, soft-mask flags reversed."""
    return reverse_complement(ids), soft[::-1].copy()


class WindowBatches(IterableDataset):
    """Per-rank micro-batches of a sampler, step after step, from `start_step` on.

    Trainer use, on rank r of w with gradient accumulation:
        batches = WindowBatches(sampler, global_batch_size=G, micro_batch_size=m, rank=r, world_size=w,
                                rc_prob=cfg.rc_prob, softmask_weight=cfg.softmask_weight, start_step=k0)
        it = iter(batches.dataloader(num_workers=2))
        for k in range(k0, steps):
            for _ in range(batches.accumulation):
                batch = next(it)        # == batches.batch(k, micro) for micro = 0, 1, ...
    """

    def __init__(
        self,
        sampler: WindowSampler,
        global_batch_size: int,
        *,
        micro_batch_size: int | None = None,
        rank: int = 0,
        world_size: int = 1,
        rc_prob: float = 0.5,
        softmask_weight: float = 1.0,
        start_step: int = 0,
        steps: int | None = None,
    ) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of size {world_size}")
        if global_batch_size < 1 or global_batch_size % world_size:
            raise DnahnetInputError(
                f"global batch size {global_batch_size} must be a positive multiple of the world size {world_size}"
            )
        per_rank = global_batch_size // world_size
        micro = per_rank if micro_batch_size is None else int(micro_batch_size)
        if micro < 1 or per_rank % micro:
            raise DnahnetInputError(
                f"per-rank batch {per_rank} (global {global_batch_size} / {world_size} ranks) is not a multiple of "
                f"micro_batch_size {micro}"
            )
        if not 0 <= rc_prob <= 1:
            raise DnahnetInputError(f"rc_prob must be in [0, 1], got {rc_prob}")
        self.sampler = sampler
        self.global_batch_size = int(global_batch_size)
        self.micro_batch_size = micro
        self.accumulation = per_rank // micro
        self.rank = rank
        self.world_size = world_size
        self.rc_prob = float(rc_prob) if sampler.source.is_dna else 0.0
        self.softmask_weight = float(softmask_weight)
        self.start_step = int(start_step)
        self.steps = steps

    def indices(self, step: int, micro: int = 0) -> np.ndarray:
        """Global sample indices of micro-batch `micro` of step `step` on this rank."""
        first = step * self.global_batch_size + self.rank * (self.global_batch_size // self.world_size)
        first += micro * self.micro_batch_size
        return np.arange(first, first + self.micro_batch_size, dtype=np.int64)

    def windows(self, step: int, micro: int = 0) -> list[tuple[Window, bool]]:
        """(window, reverse-complemented?) of every sample of a micro-batch."""
        out = []
        for i in self.indices(step, micro):
            rc = bool(self.rc_prob) and window_rng(self.sampler.seed, int(i), RC_STREAM).random() < self.rc_prob
            out.append((self.sampler.window(int(i)), rc))
        return out

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]:
        """Micro-batch `micro` of step `step` on this rank: a pure function of (seed, step, micro, rank, world)."""
        rows = []
        for w, rc in self.windows(step, micro):
            ids, soft = self.sampler.read(w)
            rows.append(reverse_complement_window(ids, soft) if rc else (ids, soft))
        return collate(rows, is_dna=self.sampler.source.is_dna, softmask_weight=self.softmask_weight)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        n = 0  # micro-batches from start_step on; worker w makes those with n % n_workers == w
        step = self.start_step
        while self.steps is None or step < self.start_step + self.steps:
            for micro in range(self.accumulation):
                if n % n_workers == worker:
                    yield self.batch(step, micro)
                n += 1
            step += 1

    def dataloader(self, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
        """A torch DataLoader over this stream; its output order is the step order whatever the worker count."""
        return DataLoader(
            self, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0
        )

    def state_dict(self, next_step: int) -> dict:
        """What a checkpoint needs to resume at `next_step` (the stream itself holds no hidden state)."""
        return {
            "next_step": int(next_step),
            "global_batch_size": self.global_batch_size,
            "sampler": {**self.sampler.state_dict(), "index": int(next_step) * self.global_batch_size},
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue at the saved step; refuses a state from another split, seed, seq_len or global batch."""
        if state.get("global_batch_size") != self.global_batch_size:
            raise DnahnetInputError(
                f"data state was saved with global batch {state.get('global_batch_size')}, "
                f"this run uses {self.global_batch_size}"
            )
        self.sampler.load_state_dict(state["sampler"])
        self.start_step = int(state["next_step"])


def make_eval_batches(
    split: Split,
    n: int,
    seq_len: int,
    batch_size: int,
    *,
    seed: int = 0,
    max_n_fraction: float = 0.1,
    softmask_weight: float = 1.0,
) -> list[dict[str, torch.Tensor]]:
    """The fixed held-out set (`eval_windows`) as batches: forward strand only, every ACGT base weighted 1 by default."""
    windows = eval_windows(split, n, seq_len, seed, max_n_fraction=max_n_fraction)
    src = split.source
    batches = []
    for a in range(0, len(windows), batch_size):
        rows = [src.read(w.chrom, w.start, w.end) for w in windows[a : a + batch_size]]
        batches.append(collate(rows, is_dna=src.is_dna, softmask_weight=softmask_weight))
    return batches
