"""Full fine-tuning: a linear head on the mean-pooled hidden states, trained with the backbone.

The pooled feature is exactly the one `DnaModel.embed(pool="mean")` returns (the
per-base view of `layer`/`stage` averaged over non-N bases; padding masked), so a
saved run predicts through the embedding path. Training: AdamW (no weight decay on
biases, norms, embeddings), the head started from a linear probe on the frozen
features (LP-FT; dev-evaluated as step 0), linear warm-up then cosine decay to 10%, gradient
clipping at 1, H-Net routing kept near its target compression by the model's own
ratio loss, class weights (BCE `pos_weight` = negatives / positives) when the
classes are unbalanced, early stopping on the dev headline metric (AUROC or
Spearman) evaluated every `eval_every` steps, the best dev state kept. Regression
targets are standardised on the training set. Whole sequences are read (no windows).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dnahnet.alphabet import N_BYTE
from dnahnet.finetune.data import LabelledSet
from dnahnet.finetune.metrics import HEADLINE, evaluate
from dnahnet.finetune.probe import class_weight
from dnahnet.infer.embed import EmbedSpec, masked_mean, per_base_view
from dnahnet.infer.model import pad_batch
from dnahnet.nn.hnet import HNetLM, no_weight_decay


@dataclass
class FullConfig:
    """Hyper-parameters of a full fine-tune (defaults suit small CPU runs)."""

    lr: float = 3e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 32
    epochs: float = 3.0
    max_steps: int | None = None
    warmup_fraction: float = 0.1
    init_head: str = "probe"  # "probe": start the head from a linear probe fitted on the frozen features (LP-FT); "zero"
    eval_every: int = 100
    patience: int = 3
    grad_clip: float = 1.0
    seed: int = 0
    layer: str = "final"
    stage: int = 0


class PooledRegressor(nn.Module):
    """HNetLM backbone + mean pooling of one layer + Linear(d, 1)."""

    def __init__(self, net: HNetLM, spec: EmbedSpec, width: int) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.head = nn.Linear(width, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def pooled(self, ids: torch.Tensor, mask: torch.Tensor | None, weights: torch.Tensor) -> tuple[torch.Tensor, list]:
        view, _, routing = per_base_view(self.net, ids, mask, self.spec)
        return torch.nan_to_num(masked_mean(view.float(), weights)), routing  # an all-N sequence pools to 0

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, routing = self.pooled(ids, mask, weights)
        out = self.head(pooled).squeeze(-1)
        ratio = torch.zeros((), device=ids.device)
        if self.net.config.learned_routing and routing:
            ratio = self.net.config.ratio_loss_weight * sum(self.net.ratio_losses(routing))
        return out, ratio


def batch_tensors(seqs: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Right-padded ids, the valid mask (None if all equal length) and pooling weights (valid and not N)."""
    ids_t, mask, _ = pad_batch(seqs, device)
    weights = ids_t != N_BYTE  # padding is N too, so this is "valid and not N"
    return ids_t, mask, weights


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def predict_raw(model: PooledRegressor, seqs: list[np.ndarray], batch_size: int, pooled: bool = False) -> np.ndarray:
    """Head outputs (logits / standardised values), or the pooled features (n, d); batches sorted by length."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out = np.empty((len(seqs), model.head.in_features) if pooled else len(seqs), np.float64)
    for i in range(0, len(order), batch_size):
        idx = order[i : i + batch_size]
        ids, mask, weights = batch_tensors([seqs[j] for j in idx], device)
        value = model.pooled(ids, mask, weights)[0] if pooled else model(ids, mask, weights)[0]
        out[idx] = value.double().cpu().numpy()
    return out


def init_head_from_probe(model: PooledRegressor, task: str, train: LabelledSet, dev: LabelledSet, mean: float, std: float,
                         batch_size: int, seed: int) -> float:
    """Set the head to a linear probe fitted on the frozen pooled features (LP-FT); returns the probe's strength."""
    from dnahnet.finetune.probe import fit_probe

    x_train = predict_raw(model, train.seqs, batch_size, pooled=True)
    x_dev = predict_raw(model, dev.seqs, batch_size, pooled=True)
    probe, _ = fit_probe(task, x_train, train.labels, x_dev, dev.labels, seed=seed)
    w = probe.coef / probe.scale  # undo the probe's standardisation: raw features in
    b = probe.intercept - float((probe.mean / probe.scale) @ probe.coef)
    if task == "regress":  # the head predicts standardised targets
        w, b = w / std, (b - mean) / std
    with torch.no_grad():
        model.head.weight.copy_(torch.as_tensor(w, dtype=model.head.weight.dtype)[None])
        model.head.bias.fill_(b)
    return probe.strength


@dataclass
class FullResult:
    model: PooledRegressor
    target_mean: float
    target_std: float
    history: list[dict]
    best_step: int
    steps: int
    bases_per_s: float  # training steps only (forward, backward, update), dev evaluations excluded


def train_full(
    net: HNetLM,
    task: str,
    train: LabelledSet,
    dev: LabelledSet,
    cfg: FullConfig,
    spec: EmbedSpec,
    width: int,
    log: Callable[[str], None] = lambda _m: None,
) -> FullResult:
    """Fine-tune `net` (in place) with a pooled head; returns the best-on-dev model."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = next(net.parameters()).device
    net.train()
    model = PooledRegressor(net, spec, width).to(device)
    y = train.labels.astype(np.float64)
    mean, std = (0.0, 1.0) if task == "classify" else (float(y.mean()), float(y.std() or 1.0))
    target = torch.tensor((y - mean) / std, dtype=torch.float32)
    pos_weight = None
    if task == "classify" and class_weight(y) is not None:
        pos_weight = torch.tensor(float((y == 0).sum() / max((y == 1).sum(), 1)), device=device)
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if p.requires_grad:
            (no_decay if no_weight_decay(name, p) else decay).append(p)
    optimizer = torch.optim.AdamW([
        {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
        {"params": list(model.head.parameters()), "lr": cfg.head_lr, "weight_decay": 0.0},
    ], betas=(0.9, 0.98))
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    steps_per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
    total = cfg.max_steps or max(1, int(round(cfg.epochs * steps_per_epoch)))
    warmup = max(1, int(cfg.warmup_fraction * total))
    best_score, best_state, best_step, bad = -math.inf, None, 0, 0
    history: list[dict] = []
    step, bases, train_s = 0, 0, 0.0
    headline = HEADLINE[task]
    if cfg.init_head == "probe":
        strength = init_head_from_probe(model, task, train, dev, mean, std, cfg.batch_size * 2, cfg.seed)
        raw = predict_raw(model, dev.seqs, cfg.batch_size * 2)
        best_score = evaluate(task, dev.labels, _link(task, raw, mean, std), n_boot=0)[headline].value
        best_state = copy.deepcopy(model.state_dict())
        history.append({"step": 0, "probe_strength": strength, "dev_" + headline: best_score})
        log(f"step 0 (head from a linear probe, strength {strength:g}): dev {headline} {best_score:.4f}")
    while step < total:
        for idx in np.array_split(rng.permutation(len(train)), steps_per_epoch):
            if step >= total:
                break
            tick = time.perf_counter()
            model.train()
            for g, lr in zip(optimizer.param_groups, base_lrs):
                g["lr"] = lr * _schedule(step, total, warmup)
            ids, mask, weights = batch_tensors([train.seqs[i] for i in idx], device)
            out, ratio = model(ids, mask, weights)
            t = target[idx].to(device)
            if task == "classify":
                loss = F.binary_cross_entropy_with_logits(out, t, pos_weight=pos_weight)
            else:
                loss = F.mse_loss(out, t)
            optimizer.zero_grad(set_to_none=True)
            (loss + ratio).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            bases += int(weights.sum())
            train_s += time.perf_counter() - tick
            if step % cfg.eval_every == 0 or step == total:
                raw = predict_raw(model, dev.seqs, cfg.batch_size * 2)
                score = evaluate(task, dev.labels, _link(task, raw, mean, std), n_boot=0)[headline].value
                history.append({"step": step, "loss": loss.item(), "dev_" + headline: score})
                log(f"step {step}/{total}: loss {loss.item():.4f}, dev {headline} {score:.4f}")
                if score > best_score:
                    best_score, best_step, bad = score, step, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    bad += 1
                    if bad >= cfg.patience:
                        log(f"early stop at step {step}: no dev improvement in {cfg.patience} evaluations")
                        total = step
                        break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FullResult(model, mean, std, history, best_step, step, bases / max(train_s, 1e-9))


def _link(task: str, raw: np.ndarray, mean: float, std: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-raw)) if task == "classify" else raw * std + mean
