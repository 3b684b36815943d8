"""Analytic FLOPs per base for any config, part by part.

Counts the matrix multiplications the implementation performs (the convention of
`torch.utils.flop_counter`: 2 FLOPs per multiply-add; elementwise work is not
counted). Encoder and decoder run at the input length L, each main network at
L divided by the compression of the stages above it; attention scores cover
min(L, window + 1) keys per query, and the full L x L block for global attention.
Training = 3 x forward. `attention="causal"` counts half of the global L x L score
block instead (the causal-half convention of papers that skip the masked half).
What SDPA executes lies between the two: its CPU kernel skips key blocks wholly above
the diagonal, which at 8 x 4 heads x 1,024 positions made a causal call take 0.76 of a
full one's time, at 341 positions all of it, at 4,096 positions 0.56 (bench/sdpa_causal.py,
bench/RESULTS.md). Per-FLOP comparisons therefore report both conventions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnahnet.config import ModelConfig, parse_layout_string
from dnahnet.nn.chunking import EMA_CHUNK


@dataclass
class FlopsReport:
    """Forward FLOPs per sequence of length L, broken down by part."""

    seq_len: int
    parts: dict[str, float] = field(default_factory=dict)

    def add(self, part: str, flops: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + flops

    @property
    def forward(self) -> float:
        return sum(self.parts.values())

    @property
    def training(self) -> float:
        return 3.0 * self.forward

    def per_base(self, training: bool = True) -> float:
        return (self.training if training else self.forward) / self.seq_len


def mamba2_flops(d: int, length: float, config: ModelConfig) -> float:
    ssm = config.ssm()
    d_inner = ssm.expand * d
    heads = d_inner // ssm.headdim
    gn = ssm.ngroups * ssm.d_state
    conv_dim = d_inner + 2 * gn
    q = min(ssm.chunk_size, max(int(length), 1))
    proj = 2 * length * d * (2 * d_inner + 2 * gn + heads) + 2 * length * d_inner * d
    conv = 2 * length * conv_dim * ssm.d_conv
    scan = 2 * length * q * gn + 2 * length * q * d_inner + 4 * length * d_inner * ssm.d_state
    return proj + conv + scan


ATTENTION_CONVENTIONS = ("full", "causal")


def attention_flops(d: int, length: float, window: int, attention: str = "full") -> float:
    if attention not in ATTENTION_CONVENTIONS:
        raise ValueError(f"attention convention must be one of {ATTENTION_CONVENTIONS}, got {attention!r}")
    keys = length if window < 0 else min(length, window + 1)
    if attention == "causal" and window < 0:
        keys = (length + 1) / 2  # query i attends to i + 1 keys: mean (L + 1) / 2
    return 2 * length * d * 3 * d + 2 * length * d * d + 4 * length * keys * d


def mlp_flops(d: int, d_intermediate: int, length: float) -> float:
    return 2 * length * d * 2 * d_intermediate + 2 * length * d_intermediate * d


def stack_flops(config: ModelConfig, stage: int, layout: str, length: float, attention: str = "full") -> float:
    d = config.d_model[stage]
    total = 0.0
    for letter, count in parse_layout_string(layout):
        per_layer = (mamba2_flops(d, length, config) if letter in "mM"
                     else attention_flops(d, length, config.attn(stage)["window_size"], attention))
        if letter.isupper():  # the built (rounded) width; 0 adds nothing
            per_layer += mlp_flops(d, config.mlp_width(stage), length)
        total += count * per_layer
    return total


def count_flops(
    config: ModelConfig, seq_len: int, compression: list[float] | None = None, attention: str = "full"
) -> FlopsReport:
    """Forward FLOPs of one sequence; `compression` = L/M per routed stage (default: the target ratios);
    `attention`: "full" (the L x L score block) or "causal" (half of it)."""
    ratios = compression if compression is not None else config.expected_compression()
    report = FlopsReport(seq_len)
    length = float(seq_len)
    for stage in range(config.n_stages):
        layout = config.stage_layout(stage)
        d = config.d_model[stage]
        if len(layout) == 1:
            report.add("main" if config.n_routed else "backbone", stack_flops(config, stage, layout[0], length, attention))
            break
        report.add(f"encoder{stage}", stack_flops(config, stage, layout[0], length, attention))
        report.add(f"decoder{stage}", stack_flops(config, stage, layout[2], length, attention))
        routing = 2 * 2 * length * d * d if config.learned_routing else 0.0
        report.add(f"routing{stage}", routing + 2 * length * d * d)  # q/k projections + residual_proj
        inner = length / ratios[stage]
        q = min(EMA_CHUNK, max(int(inner), 1))
        report.add(f"dechunk{stage}", 2 * inner * q + 2 * inner * q * d + 4 * inner * d)
        length = inner
    report.add("lm_head", 2 * seq_len * config.d_model[0] * config.vocab_size)
    return report
