"""A stack of pre-norm residual blocks built from a layout string ("m4", "T8", "T1m4").

Letters: m/M Mamba-2, t/T attention; upper case adds norm2 and a SwiGLU MLP whose
width is d_intermediate rounded up as the official SwiGLU does (`ModelConfig.mlp_width`);
a width of 0 keeps the official empty fc1/fc2 weights and adds nothing. The residual
stream is kept in fp32 and the stack ends with an RMSNorm, as in the official H-Net
(`layers.{i}.norm1/mixer/norm2/mlp`, `rmsnorm`), so its state-dict keys and shapes
match released checkpoints.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dnahnet.config import ModelConfig, parse_layout_string
from dnahnet.nn import cpu_kernel as fused_cpu
from dnahnet.nn.attention import CausalMHA
from dnahnet.nn.mamba2 import Mamba2
from dnahnet.nn.norm import RMSNorm

# Positions per segment when a long input streams through a Mamba-2 (or windowed-attention) stack without autograd
# (`Isotropic._forward_segments`). On the 2-core VM, 4,096-65,536 ran within 6% of each other
# and 1.2-1.4x faster than no streaming (`bench/inference_pairs.py --segment`, bench/RESULTS.md).
STREAM_SEGMENT_POSITIONS = 16384
# On CUDA a batch-1 pass is bound by kernel launches until it is long, so segments are longer: on an H200,
# bench-mamba2 streamed in segments of 16,384 read 2^20 bases at 1.1M bases/s and run whole at 5.0M, and one
# whole pass of 131,072 positions already ran at 4.8M, with 1.1 GiB beyond the weights (bench/RESULTS.md,
# "Second GPU run"; bf16 weights, two commands, not paired).
GPU_STREAM_SEGMENT_POSITIONS = 131072


def stream_segment_positions(device: torch.device) -> int:
    """Positions per streamed segment for tensors on `device`."""
    return GPU_STREAM_SEGMENT_POSITIONS if device.type == "cuda" else STREAM_SEGMENT_POSITIONS


def long_enough_to_stream(length: int, device: torch.device) -> bool:
    """Eager, without autograd, and longer than one segment: when a streamable stack or model may
    stream (the callers add what they need besides). Under tracing it is False before the length is
    read, since a traced chunk count may be data-dependent and must not be guarded on."""
    return (not torch.compiler.is_compiling() and not torch.is_grad_enabled()
            and length > stream_segment_positions(device))


class SwiGLU(nn.Module):
    """fc1 stacks (value, gate); out = fc2(value * silu(gate)). `width` is the built hidden width."""

    def __init__(self, d_model: int, width: int) -> None:
        super().__init__()
        self.width = width
        with warnings.catch_warnings():  # width 0: the official empty weights; their init is a no-op
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
            self.fc1 = nn.Linear(d_model, 2 * width, bias=False)
            self.fc2 = nn.Linear(width, d_model, bias=False)
        self.cpu_kernel: bool | None = None  # eager on CPU, the gate on the fused kernel (None: DNAHNET_CPU_KERNEL, on unless 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if fused_cpu.swiglu_applies(h) and fused_cpu.in_use(self.cpu_kernel):
            return self.fc2(fused_cpu.swiglu(h))
        value, gate = h.chunk(2, dim=-1)
        return self.fc2(value * F.silu(gate))


class Block(nn.Module):
    """x + mixer(norm1(x)), then x + mlp(norm2(x)) when the layer has an MLP of non-zero width."""

    def __init__(self, mixer: nn.Module, d_model: int, mlp_width: int | None) -> None:
        """`mlp_width` None: no norm2/mlp (lower-case layer); 0: the official empty MLP (upper case, d_intermediate 0)."""
        super().__init__()
        self.norm1 = RMSNorm(d_model, feeds_projection=True)
        self.mixer = mixer
        if mlp_width is not None:
            self.norm2 = RMSNorm(d_model, feeds_projection=True)
            self.mlp = SwiGLU(d_model, mlp_width)
        else:
            self.norm2 = None
            self.mlp = None

    @property
    def has_mlp(self) -> bool:
        return self.mlp is not None and self.mlp.width > 0

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_mlp:  # an empty MLP outputs zeros: skipping it is exact
            x = x + self.mlp(self.norm2(x)).to(x.dtype)
        return x

    def forward(self, x: torch.Tensor, cache=None, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x), cache, mask).to(x.dtype)
        return self._mlp(x)

    def step(self, x: torch.Tensor, cache, update: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.mixer.step(self.norm1(x), cache, update).to(x.dtype)
        return self._mlp(x)


@dataclass
class IsotropicCache:
    layers: list


def build_mixer(letter: str, d_model: int, config: ModelConfig, stage: int) -> nn.Module:
    if letter in "mM":
        ssm = config.ssm()
        return Mamba2(
            d_model, d_state=ssm.d_state, d_conv=ssm.d_conv, expand=ssm.expand,
            headdim=ssm.headdim, ngroups=ssm.ngroups, chunk_size=ssm.chunk_size,
            length_is_data_dependent=stage > 0,  # inner stages run over chunk counts
        )
    attn = config.attn(stage)
    return CausalMHA(
        d_model, num_heads=attn["num_heads"], rotary_emb_dim=attn["rotary_emb_dim"], window_size=attn["window_size"]
    )


class Isotropic(nn.Module):
    """One flat stack at one stage's width."""

    def __init__(self, config: ModelConfig, stage: int, layout: str) -> None:
        super().__init__()
        self.stage = stage
        self.d_model = config.d_model[stage]
        self.layout = layout
        mlp_width = config.mlp_width(stage)
        blocks = []
        for letter, count in parse_layout_string(layout, where=f"arch_layout stage {stage}"):
            for _ in range(count):
                width = mlp_width if letter.isupper() else None
                blocks.append(Block(build_mixer(letter, self.d_model, config, stage), self.d_model, width))
        self.layers = nn.ModuleList(blocks)
        self.rmsnorm = RMSNorm(self.d_model)

    @property
    def height(self) -> int:
        """Residual branches on this stack's path (mixers and MLPs), for init scaling."""
        return sum(1 + layer.has_mlp for layer in self.layers)

    def forward(
        self, x: torch.Tensor, cache: IsotropicCache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, L, d); `mask` (B, L) of valid left-aligned positions matters only for prefill."""
        h = x.float() if x.dtype != torch.float64 else x
        if self._streams(h, cache, mask):
            return self.rmsnorm(self._forward_segments(h, cache, mask))
        for i, layer in enumerate(self.layers):
            h = layer(h, None if cache is None else cache.layers[i], mask)
        return self.rmsnorm(h)

    def _streams(self, h: torch.Tensor, cache=None, mask: torch.Tensor | None = None) -> bool:
        """Whether to run a long input segment by segment: only without autograd, and only where
        the carried state makes it exact. A Mamba-2 stack carries its conv and SSM states (any
        rows, any caller's cache); a stack with windowed attention carries each window's last
        keys, so it streams only unpadded rows and allocates its own cache."""
        if not (long_enough_to_stream(h.shape[1], h.device) and self.streamable):
            return False
        return self.recurrent or (cache is None and mask is None)

    @property
    def recurrent(self) -> bool:
        """Every mixer is Mamba-2: a carried conv and SSM state is all a continuation needs."""
        return all(isinstance(layer.mixer, Mamba2) for layer in self.layers)

    @property
    def streamable(self) -> bool:
        """Every mixer can continue a long input from a state that does not grow with it: Mamba-2,
        or attention with a window (its last `window` keys and values, `WindowCache`)."""
        return all(isinstance(layer.mixer, Mamba2) or getattr(layer.mixer, "window_size", -1) >= 0
                   for layer in self.layers)

    def _forward_segments(
        self, h: torch.Tensor, cache: IsotropicCache | None, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """All layers over one segment of positions, then the next, carrying each layer's conv and
        SSM state (or window of keys): the working set is one segment, so a 1M-base input runs from cache at the
        speed of a short one instead of streaming every layer's activations through memory. A row
        whose valid positions (`mask`, left-aligned) ended in an earlier segment keeps its state."""
        if cache is None:
            cache = self.allocate_inference_cache(h.shape[0], 0, dtype=h.dtype)
        out = torch.empty_like(h)
        segment = stream_segment_positions(h.device)
        for start in range(0, h.shape[1], segment):
            part = h[:, start : start + segment]
            part_mask = None if mask is None else mask[:, start : start + segment]
            for layer, layer_cache in zip(self.layers, cache.layers):
                part = layer(part, layer_cache, part_mask)
            out[:, start : start + part.shape[1]] = part
        return out

    def allocate_inference_cache(self, batch_size: int, max_seqlen: int, dtype: torch.dtype | None = None) -> IsotropicCache:
        return IsotropicCache([layer.mixer.allocate_inference_cache(batch_size, max_seqlen, dtype) for layer in self.layers])

    def step(self, x: torch.Tensor, cache: IsotropicCache, update: torch.Tensor | None = None) -> torch.Tensor:
        h = x.float() if x.dtype != torch.float64 else x
        for layer, layer_cache in zip(self.layers, cache.layers):
            h = layer.step(h, layer_cache, update)
        return self.rmsnorm(h)
