"""The training loop, read top to bottom: batch, forward, loss, backward, clip, step, log, evaluate, checkpoint.

Loss of one optimiser step over its global batch (every micro-batch on every rank):

    CE    = sum(w * CE_nats) / sum(w)      next-byte targets input_ids[:, 1:], weights loss_mask[:, 1:]
    loss  = CE + ratio_loss_weight * sum_s ratio_loss(F_s, G_s, N_s)

with F_s (boundary fraction) and G_s (mean boundary probability) of routed stage s
taken over the whole global batch, as the paper defines them. Each micro-batch
backpropagates its share of that formula, scaled by the world size because DDP
averages gradients over ranks; the sum is then exactly the global gradient:

- CE: its sum(w * CE) divided by the global sum(w), known before any forward pass;
- ratio loss: affine in G once F is fixed (F carries no gradient), so a micro-batch
  contributes slope(F) * (its sum of p) / (global count). F must therefore be known
  before the first backward: with one micro-batch per rank it is all-reduced right
  after the forward pass; with gradient accumulation a no-grad pass through the
  encoders and routers alone (`HNetLM.boundary_counts`) counts the boundaries first.

Run with `pretrain(...)` (what `dnahnet pretrain` calls), or build a `Trainer`
around any batch source with `batch(step, micro)`, e.g. `dnahnet.data.loader.WindowBatches`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

import dnahnet
from dnahnet.config import (
    DataConfig, ModelConfig, TrainConfig, apply_overrides, dataclass_from_dict, in_file, load_preset,
)
from dnahnet.data.setup import accumulation_steps, build_data
from dnahnet.distributed import DistEnv, all_reduce_sum, process_group
from dnahnet.devices import default_training_precision, resolve_precision
from dnahnet.errors import DnahnetInputError
from dnahnet.io.atomic import atomic_open, check_writable_dir
from dnahnet.io.checkpoint import TRAIN, first_line, read_config
from dnahnet.io.jsonfile import dumps
from dnahnet.io.runlock import LOCK, run_lock
from dnahnet.nn import cpu_kernel
from dnahnet.nn.chunking import ratio_loss
from dnahnet.nn.compile import TRAINING_COMPILE_SCOPE, compile_layers, compile_seconds
from dnahnet.nn.hnet import HNetLM, parameter_groups
from dnahnet.train import checkpoint as ckpt
from dnahnet.train.distributed import gradient_sync, unwrap, wrap_model
from dnahnet.train.schedule import schedule_factor, total_steps

LN2 = math.log(2.0)


class TrainingDiverged(DnahnetInputError):
    """The loss or the gradient norm became NaN/inf; the last good checkpoint is kept."""


class BatchSource(Protocol):
    """Per-rank micro-batches: `batch(step, micro)` is a pure function of (seed, step, micro, rank, world).

    With `num_workers > 0` the source also needs `dataloader(num_workers, pin_memory)`
    yielding the same micro-batches in step order from its resume point.
    """

    def batch(self, step: int, micro: int = 0) -> dict[str, torch.Tensor]: ...
    def state_dict(self, next_step: int) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


# ----- pieces of the loss --------------------------------------------------------------------------
def weighted_ce(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of w * CE in nats, sum of w) over next-byte targets; divide the first by the second for the mean."""
    targets = input_ids[:, 1:].reshape(-1)
    logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    if logits.dtype in (torch.bfloat16, torch.float16):  # CE in fp32 under autocast
        logits = logits.float()
    w = loss_mask[:, 1:].reshape(-1).to(logits.dtype)
    ce = F.cross_entropy(logits, targets, reduction="none")
    return (ce * w).sum(), w.sum()


def ratio_loss_share(boundaries: torch.Tensor, prob_sum: torch.Tensor, count: torch.Tensor, target: float) -> torch.Tensor:
    """The part of ratio_loss(F, G) that a micro-batch's `prob_sum` adds to the global G = sum(p) / count.

    ratio_loss is affine in G for fixed F, so this is slope(F) * prob_sum / count:
    summed over micro-batches and ranks its gradient is that of the global loss.
    """
    frac = boundaries / count
    return ratio_loss(frac, prob_sum / count, target) - ratio_loss(frac, torch.zeros_like(prob_sum), target)


def _rng_state() -> dict:
    nps = np.random.get_state(legacy=False)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {**nps, "state": {"key": torch.from_numpy(nps["state"]["key"].astype(np.int64)), "pos": nps["state"]["pos"]}},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    nps = state["numpy"]
    np.random.set_state({**nps, "state": {"key": nps["state"]["key"].numpy().astype(np.uint32), "pos": nps["state"]["pos"]}})
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----- the trainer ----------------------------------------------------------------------------------
class Trainer:
    """AdamW on an HNetLM over a batch source; checkpoints, metrics and resume in `out_dir`.

    `on_step(trainer, metrics)` runs after every step on every rank (print or write
    only where `trainer.env.is_main`).
    """

    def __init__(
        self,
        model: HNetLM,
        config: TrainConfig,
        data_config: DataConfig,
        data: BatchSource,
        eval_batches: list[dict[str, torch.Tensor]] | None = None,
        *,
        out_dir: str | Path | None = None,
        env: DistEnv | None = None,
        on_step: Callable[["Trainer", dict], None] | None = None,
    ) -> None:
        self.config = config
        self.data_config = data_config
        self.data = data
        self.eval_batches = eval_batches or []
        self.out_dir = None if out_dir is None else check_writable_dir(out_dir)
        self.env = env or DistEnv()
        self.on_step = on_step
        self.device = self.env.device
        self.total_steps = total_steps(config)
        self.accumulation = accumulation_steps(
            config.tokens_per_step, data_config.seq_len, config.micro_batch_size, self.env.world_size
        )
        self.precision = resolve_precision(config.precision, self.device, option="train.precision",
                                           auto=default_training_precision(self.device), cast_on_cuda=False)
        self.dtype = self.precision.autocast or self.precision.weights
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        self.raw_model = model.to(self.device)
        if config.compile:  # before any wrapper; compiled lazily on the first steps
            compile_layers(self.raw_model, scope=TRAINING_COMPILE_SCOPE)
        self.model = wrap_model(self.raw_model, self.env, config.distributed)
        self.raw_model = unwrap(self.model)
        self.model_config = self.raw_model.config
        self.targets = self.model_config.stage_target_ratios()
        self.ratio_weight = self.model_config.ratio_loss_weight if self.model_config.learned_routing else 0.0
        self.optimizer = torch.optim.AdamW(
            parameter_groups(self.raw_model, config.weight_decay),
            lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps, fused=False,
        )
        self.step = 0  # optimiser steps done
        self.elapsed = 0.0  # seconds spent in train steps (no eval, no checkpoints)
        self.compile_s = 0.0  # of which torch.compile (config.compile), this process
        self.history: list[dict] = []  # every metrics line written so far
        self.best: float | None = None  # lowest held-out bits per base
        self._window = [0, 0.0]  # steps and seconds since the last log line
        self._stream = None  # loader iterator when num_workers > 0

    # ----- one optimiser step ----------------------------------------------------------------------
    def _autocast(self):
        return self.precision.context(self.device)

    def _micro_batches(self, step: int) -> list[dict[str, torch.Tensor]]:
        """This rank's micro-batches of `step`, read here or prefetched by `num_workers` loader processes."""
        if self.config.num_workers > 0:
            if self._stream is None:  # created lazily so that it starts where a resume left off
                self._stream = iter(self.data.dataloader(self.config.num_workers, pin_memory=self.device.type == "cuda"))
            batches = [next(self._stream) for _ in range(self.accumulation)]
        else:
            batches = [self.data.batch(step, i) for i in range(self.accumulation)]
        return [{k: b[k].to(self.device, non_blocking=True) for k in ("input_ids", "loss_mask")} for b in batches]

    def _global_counts(self, micro: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """(S, 2) global (boundary count, valid count) per routed stage for this step, before any backward."""
        counts = torch.zeros(self.model_config.n_routed, 2, device=self.device)
        for batch in micro:
            with self._autocast():
                if self.config.distributed == "fsdp" and self.env.distributed:
                    with torch.no_grad():  # FSDP shards the parameters the encoder-only pass would touch
                        stats = [(b, n) for b, _, n in (r.stats() for r in self.model(batch["input_ids"]).routing)]
                else:
                    stats = self.raw_model.boundary_counts(batch["input_ids"])
            for s, (b, n) in enumerate(stats):
                counts[s, 0] += b
                counts[s, 1] += n
        return all_reduce_sum(counts)

    def train_step(self) -> dict:
        """One optimiser step over the global batch; returns its metrics (global values on every rank)."""
        step, n_stages, world = self.step, self.model_config.n_routed, self.env.world_size
        factor = schedule_factor(self.config, step, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * group["lr_multiplier"] * factor

        micro = self._micro_batches(step)
        weight = all_reduce_sum(sum(b["loss_mask"][:, 1:].sum() for b in micro).float()).clamp_min(1e-12)
        counts = self._global_counts(micro) if self.accumulation > 1 and n_stages else None
        ce_total = torch.zeros((), device=self.device)
        stage_totals = torch.zeros(n_stages, 3, device=self.device)  # per stage: boundaries, sum of p, positions
        for i, batch in enumerate(micro):
            with gradient_sync(self.model, i == len(micro) - 1):
                with self._autocast():
                    out = self.model(batch["input_ids"])
                    ce_sum, _ = weighted_ce(out.logits, batch["input_ids"], batch["loss_mask"])
                    stats = [r.stats() for r in out.routing]
                if counts is None and n_stages:
                    counts = all_reduce_sum(torch.stack([torch.stack([b, n]) for b, _, n in stats]).float())
                loss = ce_sum / weight
                for s, (_, p, _) in enumerate(stats):
                    loss = loss + self.ratio_weight * ratio_loss_share(counts[s, 0], p, counts[s, 1], self.targets[s])
                (loss * world).backward()  # DDP averages over ranks; this makes it the global sum
            ce_total += ce_sum.detach()
            for s, (b, p, n) in enumerate(stats):
                stage_totals[s] += torch.stack([b, p.detach(), n]).float()
        all_reduce_sum(ce_total)
        all_reduce_sum(stage_totals)

        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.raw_model.parameters(), self.config.grad_clip if self.config.grad_clip > 0 else float("inf")
        )
        grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
        ce = float(ce_total / weight)
        ratios, compression = self._stage_metrics(stage_totals)
        loss_value = ce + self.ratio_weight * sum(ratios)
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            self._diverged(step + 1, loss_value, grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {
            "step": self.step,
            "bases_seen": self.step * self.config.tokens_per_step,
            "loss": loss_value,
            "ce": ce,
            "bits_per_base": ce / LN2,
            "ratio_loss": ratios,
            "compression": compression,
            "lr": self.config.lr * factor,
            "grad_norm": grad_norm,
        }

    def _stage_metrics(self, totals: torch.Tensor) -> tuple[list[float], list[float]]:
        """Ratio loss and realised compression L/M per stage from (boundaries, sum of p, positions) totals."""
        b, p, n = totals.double().unbind(-1)
        ratios = [float(ratio_loss(b[s] / n[s], p[s] / n[s], self.targets[s])) for s in range(len(totals))]
        return ratios, (n / b.clamp_min(1)).tolist()

    @torch.no_grad()
    def _check_savable(self, step: int, metrics: dict, *, evaluated: bool) -> None:
        """A checkpoint is written only from finite weights with a finite held-out loss.

        The divergence guard in `train_step` sees the loss from before the update; an
        update that blows the weights up shows only afterwards. Without a full
        evaluation at this step, the first held-out batch stands in for it.
        """
        finite = torch.ones((), device=self.device)
        for p in self.raw_model.parameters():
            local = p.to_local() if hasattr(p, "to_local") else p
            finite = finite * torch.isfinite(local).all().float()
        if float(all_reduce_sum(finite)) < self.env.world_size:
            self._diverged(step, metrics["loss"], metrics["grad_norm"], held_out="non-finite weights")
        if evaluated or not self.eval_batches:
            return
        model = self.model if self.config.distributed == "fsdp" else self.raw_model
        batch = self.eval_batches[0]
        ids, mask = batch["input_ids"].to(self.device), batch["loss_mask"].to(self.device)
        self.raw_model.eval()
        try:
            with self._autocast():
                out = model(ids)
            ce, w = weighted_ce(out.logits, ids, mask)
        finally:
            self.raw_model.train()
        if float(w) > 0 and not math.isfinite(float(ce)):
            self._diverged(step, metrics["loss"], metrics["grad_norm"], held_out=float(ce))

    def _diverged(self, step: int, loss: float, grad_norm: float, held_out: float | str | None = None) -> None:
        last = ckpt.find_checkpoint(self.out_dir) if self.out_dir is not None else None
        kept = f"the last good checkpoint is {last} (step {self._checkpoint_step(last)})" if last else "no checkpoint was written before it"
        after = "" if held_out is None else f" after the update (held-out {held_out}; not checkpointed)"
        raise TrainingDiverged(
            f"training diverged at step {step}{after}: loss {loss}, gradient norm {grad_norm}; {kept}. "
            "Lower the learning rate (--lr) or lengthen the warmup, then resume or restart"
        )

    @staticmethod
    def _checkpoint_step(directory: Path) -> int | str:
        try:
            return json.loads((directory / TRAIN).read_text())["step"]
        except (OSError, ValueError, KeyError):
            return "?"

    # ----- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, fp32: bool = False) -> dict:
        """Held-out bits per base (N excluded), realised compression L/M and ratio loss per stage.

        Every rank evaluates the whole fixed set, so every rank gets the same numbers
        without communication (and FSDP's collectives line up). `fp32` scores without the
        training autocast (the weights are fp32), as `dnahnet score` does by default, so
        readouts of runs trained in different precisions compare.
        """
        model = self.model if self.config.distributed == "fsdp" else self.raw_model
        n_stages = self.model_config.n_routed
        ce_sum = w_sum = 0.0
        stage_totals = torch.zeros(n_stages, 3, dtype=torch.float64)
        self.raw_model.eval()
        for batch in self.eval_batches:
            ids, mask = batch["input_ids"].to(self.device), batch["loss_mask"].to(self.device)
            with contextlib.nullcontext() if fp32 else self._autocast():
                out = model(ids)
            c, w = weighted_ce(out.logits, ids, mask)
            ce_sum, w_sum = ce_sum + float(c), w_sum + float(w)
            for s, r in enumerate(out.routing):
                stage_totals[s] += torch.tensor([float(x) for x in r.stats()], dtype=torch.float64)
        self.raw_model.train()
        if w_sum == 0:
            raise DnahnetInputError("the held-out windows contain no scorable base (all N)")
        ratios, compression = self._stage_metrics(stage_totals)
        return {"eval_bits_per_base": ce_sum / w_sum / LN2, "eval_compression": compression, "eval_ratio_loss": ratios}

    # ----- the loop -----------------------------------------------------------------------------------
    def train(self, stop_at: int | None = None) -> dict | None:
        """Train to `total_steps` (or stop after step `stop_at`, checkpointed); returns the last metrics."""
        cfg = self.config
        end = self.total_steps if stop_at is None else min(stop_at, self.total_steps)
        metrics = None
        while self.step < end:
            c0 = compile_seconds() if cfg.compile else 0.0
            t0 = time.perf_counter()
            metrics = self.train_step()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            dt = time.perf_counter() - t0
            self.elapsed += dt
            self._window[0] += 1
            self._window[1] += dt
            metrics["bases_per_s"] = self._window[0] * cfg.tokens_per_step / self._window[1]
            metrics["elapsed_s"] = self.elapsed
            if cfg.compile:  # compiling inside train steps (so elapsed_s - compile_s is run time); eval graphs not counted
                self.compile_s += compile_seconds() - c0
                metrics["compile_s"] = self.compile_s

            k = self.step
            evaluate = bool(self.eval_batches) and cfg.eval_every > 0 and (k % cfg.eval_every == 0 or k == self.total_steps)
            if evaluate:
                metrics.update(self.evaluate())
            if k % max(cfg.log_every, 1) == 0 or evaluate or k == end:
                self._log(metrics)
            if evaluate and not math.isfinite(metrics["eval_bits_per_base"]):
                self._diverged(k, metrics["loss"], metrics["grad_norm"], held_out=metrics["eval_bits_per_base"])
            if self.out_dir is not None:
                names = [ckpt.LATEST] if (cfg.checkpoint_every > 0 and k % cfg.checkpoint_every == 0) or k == end else []
                if evaluate and cfg.keep_best and (self.best is None or metrics["eval_bits_per_base"] < self.best):
                    self.best = metrics["eval_bits_per_base"]
                    names.append(ckpt.BEST)
                if names:
                    self._check_savable(k, metrics, evaluated=evaluate)
                    self.save(names)
            if self.on_step is not None:  # on every rank, so a callback may evaluate or save (collectives)
                self.on_step(self, metrics)
        return metrics

    def _log(self, metrics: dict) -> None:
        self.history.append(dict(metrics))
        self._window = [0, 0.0]
        if self.out_dir is not None and self.env.is_main:
            try:
                with open(self.out_dir / ckpt.METRICS, "a", encoding="utf-8") as fh:
                    fh.write(dumps(metrics) + "\n")
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise DnahnetInputError("no space left on device writing this file", file=str(self.out_dir / ckpt.METRICS)) from None

    # ----- checkpoints ----------------------------------------------------------------------------------
    def train_info(self) -> dict:
        """train.json: both configs and the progress, enough to rebuild the run."""
        return {
            "train": dataclasses.asdict(self.config),
            "data": dataclasses.asdict(self.data_config),
            "step": self.step,
            "bases_seen": self.step * self.config.tokens_per_step,
            "total_steps": self.total_steps,
            "world_size": self.env.world_size,
            "accumulation": self.accumulation,
            "device": str(self.device),
            "precision": str(self.dtype).removeprefix("torch."),
            "precision_note": self.precision.describe(),  # which precision ran and why
            **({"cpu_scan": cpu_kernel.describe()} if self.device.type == "cpu" else {}),  # DNAHNET_CPU_KERNEL
            "dnahnet": dnahnet.__version__,
        }

    def save(self, names: tuple[str, ...] | list[str] = (ckpt.LATEST,)) -> list[Path]:
        """Write checkpoint folder(s) `out_dir/NAME` (rank 0; every rank joins the state gathering)."""
        model_state, optim_state = get_state_dict(
            self.raw_model, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
        if not self.env.is_main or self.out_dir is None:
            return []
        trainer_state = {
            "step": self.step,
            "bases_seen": self.step * self.config.tokens_per_step,
            "elapsed_s": self.elapsed,
            "best": self.best,
            "optimizer": optim_state,
            "scheduler": {"schedule": self.config.schedule, "total_steps": self.total_steps, "next_step": self.step},
            "rng": _rng_state(),
            "data": self.data.state_dict(self.step),
        }
        return [
            ckpt.write_checkpoint(
                self.out_dir, name, config=self.model_config, model_state=model_state,
                trainer_state=trainer_state, train_info=self.train_info(), metrics=self.history,
            )
            for name in names
        ]

    def resume(self, directory: str | Path) -> None:
        """Continue from a checkpoint folder exactly where it stopped (every rank reads it)."""
        saved = ckpt.read_checkpoint(directory)
        if saved.config.to_dict() != self.model_config.to_dict():
            raise DnahnetInputError("checkpoint's config.json differs from this run's model config", file=str(directory))
        state = saved.trainer_state
        try:
            set_state_dict(
                self.raw_model, self.optimizer, model_state_dict=saved.model_state,
                optim_state_dict=state["optimizer"], options=StateDictOptions(full_state_dict=True),
            )
        except (RuntimeError, KeyError, ValueError) as exc:
            raise DnahnetInputError(f"checkpoint does not fit this model/optimiser ({first_line(exc)})", file=str(directory)) from None
        self.data.load_state_dict(state["data"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed_s", 0.0))
        self.best = state.get("best")
        self.history = [m for m in saved.metrics if m.get("step", 0) <= self.step]
        if self.out_dir is not None and self.env.is_main:  # drop log lines written after that checkpoint
            with atomic_open(self.out_dir / ckpt.METRICS) as fh:
                fh.writelines(dumps(m) + "\n" for m in self.history)


# ----- a whole run from configs -------------------------------------------------------------------------
def run_configs(
    config: str | Path | None = None,
    *,
    resume_from: str | Path | None = None,
    train: dict | None = None,
    data: dict | None = None,
    overrides: list[str] | None = None,
) -> tuple[ModelConfig, TrainConfig, DataConfig]:
    """Configs of a run: a preset or JSON (default `cpu-small`) or a checkpoint to resume, then
    `overrides` (`--set train.lr=3e-4`), then the command-line options in `train`/`data`.

    Without any genome or text the bundled demo genome is used; paths are made absolute
    so that a run resumes from any working directory.
    """
    if resume_from is not None:
        if config is not None:
            raise DnahnetInputError("--resume continues with the checkpoint's configuration; leave out --config")
        if any(o.strip().startswith("model.") for o in overrides or []):
            raise DnahnetInputError("--resume continues the checkpoint's model; --set model.* cannot change it")
        model_cfg = read_config(resume_from)
        info_path = Path(resume_from) / TRAIN
        try:
            info = json.loads(info_path.read_text())
            base_train, base_data = info["train"], info["data"]
        except (OSError, ValueError, KeyError):
            raise DnahnetInputError("train.json is missing or unreadable; cannot resume", file=str(info_path)) from None
        saved_len = base_data.get("seq_len")
        if (data or {}).get("seq_len") not in (None, saved_len):
            raise DnahnetInputError(
                f"--seq-len {data['seq_len']}: this run was trained with seq_len {saved_len}, and --resume continues it "
                "unchanged; leave out --seq-len (or start a new run)", file=str(info_path))
        source = str(info_path)
        if overrides:
            changed = apply_overrides({"train": base_train, "data": base_data}, overrides)
            base_train, base_data = changed["train"], changed["data"]
    else:
        source = str(config or "cpu-small")
        preset = apply_overrides(load_preset(config or "cpu-small"), overrides or [])
        try:
            model_cfg = ModelConfig.from_dict(preset["model"])
        except DnahnetInputError as exc:
            raise in_file(exc, source) from None
        base_train, base_data = preset.get("train", {}), preset.get("data", {})
    train_over = {k: v for k, v in (train or {}).items() if v is not None}
    if "steps" in train_over or "bases" in train_over:  # a budget given here replaces the base one
        base_train = {**base_train, "steps": None, "bases": None}
    data_over = {k: v for k, v in (data or {}).items() if v is not None}
    try:
        train_cfg = dataclass_from_dict(TrainConfig, {**base_train, **train_over}, what="train config")
        data_cfg = dataclass_from_dict(DataConfig, {**base_data, **data_over}, what="data config")
    except DnahnetInputError as exc:  # name the file unless the bad value came from a command-line option
        given = {**train_over, **data_over}
        raise (exc if any(f" {k}:" in exc.message for k in given) else in_file(exc, source)) from None
    if data_cfg.text:
        data_cfg.mode = "text"
    if data_cfg.mode == "dna" and not data_cfg.genome:
        from dnahnet.data.demo import demo_genome_path

        data_cfg.genome = [str(demo_genome_path())]
    data_cfg.genome = [str(Path(p).resolve()) for p in data_cfg.genome]
    data_cfg.text = [str(Path(p).resolve()) for p in data_cfg.text]
    return model_cfg, train_cfg, data_cfg


def pretrain(
    model_config: ModelConfig,
    train_config: TrainConfig,
    data_config: DataConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    on_step: Callable[[Trainer, dict], None] | None = None,
) -> Trainer:
    """Train a model from configs into `out_dir` (checkpoints `latest/`, `best/`, `metrics.jsonl`).

    Under torchrun every rank calls this; rank 0 writes. `resume` continues from
    `out_dir/latest`; an existing run is never overwritten unless `overwrite`.
    """
    with process_group(train_config.device) as env:
        lock = contextlib.ExitStack()
        created, owned = not Path(out_dir).exists(), False
        try:
            out = check_writable_dir(out_dir)
            if env.is_main:  # a second run into this folder is refused, naming this one
                lock.enter_context(run_lock(out))
                owned = True
            existing = ckpt.find_checkpoint(out)
            if resume and existing is None:
                raise DnahnetInputError("nothing to resume: no checkpoint in this folder (leave out --resume to start)", file=str(out))
            if not resume and existing is not None and not overwrite:
                raise DnahnetInputError(
                    "this folder already holds a training run; pass --resume to continue it, --overwrite to replace it, "
                    "or choose another --out",
                    file=str(out),
                )
            data, eval_batches = build_data(data_config, train_config, env)
            torch.manual_seed(train_config.seed)
            model = HNetLM(model_config)
            trainer = Trainer(model, train_config, data_config, data, eval_batches, out_dir=out, env=env, on_step=on_step)
            if resume:
                trainer.resume(existing)
            elif env.is_main:
                for name in (ckpt.LATEST, ckpt.BEST):
                    for path in (out / name, out / f".{name}.old", out / f".{name}.partial"):
                        shutil.rmtree(path, ignore_errors=True)
                (out / ckpt.METRICS).unlink(missing_ok=True)
            trainer.train()
            return trainer
        finally:
            if created and owned and {p.name for p in Path(out_dir).iterdir()} <= {LOCK}:
                shutil.rmtree(out_dir, ignore_errors=True)  # stopped before anything was written: leave no empty folder
            lock.close()
