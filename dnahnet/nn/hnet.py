"""The recursive H-Net stage and the byte-level language model around it.

`HNet` owns an encoder, a main network and a decoder; its main network is
another `HNet` (the next stage) whose innermost level is a plain isotropic
stack. A 2-stage model is not a special case, and an isotropic model (`["T12"]`)
is an `HNet` that is innermost at stage 0. Module names follow the official
implementation, so released checkpoints load with `load_state_dict(strict=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import record_function

from dnahnet.config import ModelConfig
from dnahnet.nn.chunking import (
    ChunkLayer,
    DeChunkCache,
    DeChunkLayer,
    FixedRouting,
    RoutingCache,
    RoutingModule,
    RoutingOutput,
    full_precision,
    ratio_loss,
    ste,
)
from dnahnet.nn import isotropic
from dnahnet.nn.isotropic import Isotropic, IsotropicCache


@dataclass
class HNetCache:
    """Inference state of one stage: every cache a step needs, outer to inner."""

    encoder: IsotropicCache | None = None
    routing: RoutingCache | None = None
    main: "HNetCache | IsotropicCache | None" = None
    dechunk: DeChunkCache | None = None
    decoder: IsotropicCache | None = None
    last_routing: list = field(default_factory=list)  # RoutingOutput of the latest step, per stage


class HNet(nn.Module):
    def __init__(self, config: ModelConfig, stage: int = 0) -> None:
        super().__init__()
        self.stage = stage
        self.d_model = config.d_model[stage]
        layout = config.stage_layout(stage)
        self.is_innermost = len(layout) == 1
        if self.is_innermost:
            self.main_network = Isotropic(config, stage, layout[0])
        else:
            self.encoder = Isotropic(config, stage, layout[0])
            self.main_network = HNet(config, stage + 1)
            self.decoder = Isotropic(config, stage, layout[2])
            if config.fixed_chunk is not None:
                self.routing_module = FixedRouting(self.d_model, config.fixed_chunk)
            else:
                self.routing_module = RoutingModule(self.d_model)
            self.chunk_layer = ChunkLayer()
            self.dechunk_layer = DeChunkLayer(self.d_model)
            self.residual_proj = nn.Linear(self.d_model, self.d_model, dtype=torch.float32)
            nn.init.zeros_(self.residual_proj.weight)
            self.residual_proj.weight._no_reinit = True
        if stage > 0 and self.d_model > config.d_model[stage - 1]:
            self.pad_dimension = nn.Parameter(torch.zeros(self.d_model - config.d_model[stage - 1]))
        else:
            self.pad_dimension = None

    # ------------------------------------------------------------------
    def _pad(self, h: torch.Tensor) -> torch.Tensor:
        if self.pad_dimension is None:
            return h
        return torch.cat([h, self.pad_dimension.to(h.dtype).expand(*h.shape[:-1], -1)], dim=-1)

    def _residual(self, h: torch.Tensor) -> torch.Tensor:
        w = self.residual_proj.weight
        dtype = torch.float64 if h.dtype == torch.float64 else w.dtype
        with full_precision(h):  # fp32 (the weights' dtype) under bf16 autocast too
            return F.linear(h.to(dtype), w.to(dtype), self.residual_proj.bias.to(dtype))

    def forward(
        self, h: torch.Tensor, mask: torch.Tensor | None = None, cache: HNetCache | None = None
    ) -> tuple[torch.Tensor, list[RoutingOutput]]:
        """h (B, L, D_prev) -> (B, L, D_prev) and the routing outputs of this stage and below."""
        d_in = h.shape[-1]
        s = self.stage
        h = self._pad(h)
        if self.is_innermost:
            with record_function(f"stage{s}.main"):
                out = self.main_network(h, None if cache is None else cache.main, mask)
            return out[..., :d_in], []
        with record_function(f"stage{s}.encoder"):
            h = self.encoder(h, None if cache is None else cache.encoder, mask)
        with record_function(f"stage{s}.routing"):
            residual = self._residual(h)
            routing = self.routing_module(h, mask, None if cache is None else cache.routing)
        with record_function(f"stage{s}.chunk"):
            chunks, next_mask = self.chunk_layer(h, routing.boundary_mask)
        with record_function(f"stage{s}.main"):  # includes the inner stage's own labels
            inner, deeper = self.main_network(chunks, next_mask, None if cache is None else cache.main)
        with record_function(f"stage{s}.dechunk"):
            z = self.dechunk_layer(  # smoothed and added in the residual's dtype (fp32 under autocast)
                inner.to(residual.dtype), routing.boundary_mask, routing.boundary_prob, mask, None if cache is None else cache.dechunk
            )
            h = (z.to(residual.dtype) * ste(routing.selected_probs)[..., None] + residual).to(h.dtype)
        with record_function(f"stage{s}.decoder"):
            h = self.decoder(h, None if cache is None else cache.decoder, mask)
        return h[..., :d_in], [routing, *deeper]

    @torch.no_grad()
    def boundary_counts(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(boundary count, valid count) per routed stage from the encoders and routers alone.

        A cheap pass (no main network, no decoder) that gives the global F of the ratio
        loss before any micro-batch's backward.
        """
        if self.is_innermost:
            return []
        h = self.encoder(self._pad(h), None, mask)
        routing = self.routing_module(h, mask)
        b, _, n = routing.stats()
        chunks, next_mask = self.chunk_layer(h, routing.boundary_mask)
        return [(b, n), *self.main_network.boundary_counts(chunks, next_mask)]

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype: torch.dtype | None = None) -> HNetCache:
        if self.is_innermost:
            return HNetCache(main=self.main_network.allocate_inference_cache(batch_size, max_seqlen, dtype))
        device = self.residual_proj.weight.device
        return HNetCache(
            encoder=self.encoder.allocate_inference_cache(batch_size, max_seqlen, dtype),
            routing=self.routing_module.allocate_inference_cache(batch_size, max_seqlen, device, dtype),
            main=self.main_network.allocate_inference_cache(batch_size, max_seqlen, dtype),
            dechunk=self.dechunk_layer.allocate_inference_cache(batch_size, max_seqlen, device, dtype),
            decoder=self.decoder.allocate_inference_cache(batch_size, max_seqlen, dtype),
        )

    def step(
        self, h: torch.Tensor, cache: HNetCache, update: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[RoutingOutput]]:
        """One position per row, h (B, 1, D_prev). Rows advance where `update` (default all).

        Every row runs through the inner stage, but only rows that emit a chunk
        here advance its caches, so rows at different chunk counts stay exact.
        """
        d_in = h.shape[-1]
        h = self._pad(h)
        if self.is_innermost:
            return self.main_network.step(h, cache.main, update)[..., :d_in], []
        h = self.encoder.step(h, cache.encoder, update)
        residual = self._residual(h.squeeze(1))
        routing = self.routing_module.step(h, cache.routing, update)
        inner_update = routing.boundary_mask if update is None else routing.boundary_mask & update
        inner, deeper = self.main_network.step(h, cache.main, inner_update)
        z = self.dechunk_layer.step(inner, routing.boundary_mask, routing.boundary_prob, cache.dechunk, update)
        # STE(c) is exactly 1 in the forward direction, and step() never needs gradients.
        h = (z.squeeze(1).to(residual.dtype) + residual).to(h.dtype).unsqueeze(1)
        h = self.decoder.step(h, cache.decoder, update)
        return h[..., :d_in], [routing, *deeper]

    # ------------------------------------------------------------------
    def init_weights(self, initializer_range: float = 0.02, parent_residuals: int = 0) -> None:
        """N(0, 0.02) linears; out_proj/fc2 scaled by 1/sqrt(residual layers on the path)."""
        stacks = [self.main_network] if self.is_innermost else [self.encoder, self.decoder]
        n_residuals = parent_residuals + sum(len(s.layers) for s in stacks)
        for stack in stacks:
            for name, module in stack.named_modules():
                if isinstance(module, nn.Linear) and not getattr(module.weight, "_no_reinit", False):
                    std = initializer_range
                    if name.endswith("out_proj") or name.endswith("fc2"):
                        std = initializer_range / max(n_residuals, 1) ** 0.5
                    nn.init.normal_(module.weight, mean=0.0, std=std)
        if not self.is_innermost:
            self.main_network.init_weights(initializer_range, n_residuals)


@dataclass
class HNetOutput:
    """logits (B, L, V); routing: one RoutingOutput per routed stage (outer first);
    ratio_losses: one scalar per routed stage over this batch; ratio_loss: their weighted sum."""

    logits: torch.Tensor
    routing: list[RoutingOutput]
    ratio_losses: list[torch.Tensor]
    ratio_loss: torch.Tensor


class HNetLM(nn.Module):
    """Byte embedding -> H-Net backbone -> LM head (next-byte prediction)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model[0]
        self.embeddings = nn.Embedding(config.vocab_size, d)
        self.backbone = HNet(config, 0)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.init_weights()
        if config.tie_embeddings:
            self.lm_head.weight = self.embeddings.weight

    def init_weights(self, initializer_range: float = 0.02) -> None:
        nn.init.normal_(self.embeddings.weight, mean=0.0, std=1.0)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=initializer_range)
        self.backbone.init_weights(initializer_range)

    @property
    def n_routed(self) -> int:
        return self.config.n_routed

    def ratio_losses(self, routing: list[RoutingOutput]) -> list[torch.Tensor]:
        """Per-stage ratio loss with F and G taken over this batch (see `RoutingOutput.stats`)."""
        losses = []
        for out, target in zip(routing, self.config.stage_target_ratios()):
            b, p, n = out.stats()
            losses.append(ratio_loss(b / n, p / n, target))
        return losses

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor | None = None, cache: HNetCache | None = None) -> HNetOutput:
        """input_ids (B, L). `mask` (B, L) marks valid (left-aligned) positions; a fresh
        `cache` from `allocate_inference_cache` is filled for later `step()` calls (prefill),
        and a used one is continued from."""
        if self._streams(input_ids, mask, cache):
            logits, routing = self._forward_segments(input_ids)
        else:
            logits, routing = self._logits_and_routing(input_ids, mask, cache)
        with record_function("ratio_loss"):
            if self.config.learned_routing:
                losses = self.ratio_losses(routing)
            else:
                losses = [torch.zeros((), device=logits.device) for _ in routing]
            total = self.config.ratio_loss_weight * sum(losses) if losses else torch.zeros((), device=logits.device)
        return HNetOutput(logits, routing, losses, total)

    def _logits_and_routing(
        self, input_ids: torch.Tensor, mask: torch.Tensor | None, cache: HNetCache | None
    ) -> tuple[torch.Tensor, list[RoutingOutput]]:
        with record_function("embedding"):
            h = self.embeddings(input_ids)
        h, routing = self.backbone(h, mask, cache)
        with record_function("lm_head"):
            logits = self.lm_head(h.to(self.lm_head.weight.dtype) if h.dtype != torch.float64 else h)
        return logits, routing

    @property
    def streamable(self) -> bool:
        """Every stack of every stage is Mamba-2 or windowed attention, so the whole model can
        continue a long input from caches that do not grow with it."""
        return all(stack.streamable for stack in self.modules() if isinstance(stack, Isotropic))

    def _streams(self, input_ids: torch.Tensor, mask: torch.Tensor | None, cache: HNetCache | None) -> bool:
        """Whether to run a long input segment by segment through every stage (see `_forward_segments`):
        without autograd, one unpadded row, no caller's cache, a streamable model."""
        return (
            isotropic.long_enough_to_stream(input_ids.shape[1], input_ids.device)
            and cache is None
            and mask is None
            and input_ids.shape[0] == 1
            and self.streamable
        )

    def _forward_segments(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, list[RoutingOutput]]:
        """The whole model over one segment of positions, then the next, every stage continuing from
        its cache (conv and SSM states or windows of keys, the router's last hidden state, the
        dechunk EMA's last value):
        nothing of full length is materialised but the logits, so the outer stage of a 1M-base input
        runs at the speed of a short one. Equal to one pass; the routing outputs of the segments are
        joined (a segment that emitted no chunk adds nothing to the next stage's)."""
        segment = isotropic.stream_segment_positions(input_ids.device)
        cache = self.allocate_inference_cache(1, 0, dtype=self.embeddings.weight.dtype)
        logits, parts = None, []
        for start in range(0, input_ids.shape[1], segment):
            part, routing = self._logits_and_routing(input_ids[:, start : start + segment], None, cache)
            if logits is None:
                logits = part.new_empty(1, input_ids.shape[1], part.shape[-1])
            logits[:, start : start + part.shape[1]] = part
            parts.append(routing)
        return logits, [_joined(stage) for stage in zip(*parts)]

    def boundary_counts(self, input_ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per routed stage (boundary count, valid count) without running main networks or decoders."""
        return self.backbone.boundary_counts(self.embeddings(input_ids))

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype: torch.dtype | None = None) -> HNetCache:
        return self.backbone.allocate_inference_cache(batch_size, max_seqlen, dtype)

    def step(self, input_ids: torch.Tensor, cache: HNetCache) -> torch.Tensor:
        """input_ids (B, 1) -> next-byte logits (B, 1, V); any batch size.

        The routing decisions of this step (per stage) are left in `cache.last_routing`.
        """
        h = self.embeddings(input_ids)
        h, routing = self.backbone.step(h, cache)
        cache.last_routing = routing
        return self.lm_head(h.to(self.lm_head.weight.dtype) if h.dtype != torch.float64 else h)


def _joined(segments: tuple[RoutingOutput, ...]) -> RoutingOutput:
    """One row's routing outputs of consecutive segments as one: their valid positions, in order."""
    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(s, name) if s.mask is None else getattr(s, name)[s.mask][None] for s in segments], dim=1)

    return RoutingOutput(cat("boundary_prob"), cat("boundary_mask"), cat("selected_probs"), None)


def stage_of_parameter(name: str) -> int:
    """Stage index of a parameter from its name (each `main_network.` nesting under an HNet is one stage)."""
    if not name.startswith("backbone."):
        return 0
    parts = name.split(".")[1:]
    stage = 0
    for i, part in enumerate(parts):
        if part != "main_network":
            break
        # The innermost isotropic stack is also called main_network but is the same stage.
        if i + 1 < len(parts) and parts[i + 1] in ("layers", "rmsnorm"):
            break
        stage += 1
    return stage


def no_weight_decay(name: str, param: torch.Tensor) -> bool:
    """Biases, norms, embeddings and SSM scalars are not decayed."""
    return (
        param.ndim < 2
        or getattr(param, "_no_weight_decay", False)
        or "embeddings" in name
        or name.endswith("pad_dimension")
    )


def parameter_groups(model: HNetLM, weight_decay: float) -> list[dict]:
    """AdamW groups: per-stage LR multiplier x (decay / no decay). Each group has `lr_multiplier`."""
    multipliers = model.config.stage_lr_multipliers()
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        stage = stage_of_parameter(name)
        decay = not no_weight_decay(name, param)
        key = (stage, decay)
        if key not in groups:
            groups[key] = {
                "params": [], "names": [], "lr_multiplier": multipliers[stage],
                "weight_decay": weight_decay if decay else 0.0, "stage": stage,
            }
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]
