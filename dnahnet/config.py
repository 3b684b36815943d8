"""Configuration dataclasses, serialised to JSON or YAML.

`ModelConfig` reads the official H-Net JSON files (github.com/goombalab/hnet
`configs/*.json`) unchanged and adds dnahnet's own fields with defaults that keep
those files valid. Every check that can fail on a user's file fails here, at
construction, with one line naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnahnet.errors import DnahnetInputError

LAYOUT_TOKEN = re.compile(r"([mMtT])(\d+)")
PRESET_DIR = Path(__file__).parent / "presets"
OFFICIAL_MLP_MULTIPLE = 128  # the official SwiGLU rounds its hidden width up to a multiple of this


def parse_layout_string(layout: str, *, where: str = "arch_layout") -> list[tuple[str, int]]:
    """Split "T1m4" into [("T", 1), ("m", 4)]; reject anything else."""
    if not isinstance(layout, str) or not layout:
        raise DnahnetInputError(f"{where}: expected a layout string like 'm4' or 'T1m4', got {layout!r}")
    tokens = LAYOUT_TOKEN.findall(layout)
    if "".join(f"{a}{n}" for a, n in tokens) != layout:
        bad = re.sub(r"[mMtT]\d+", "", layout) or layout
        raise DnahnetInputError(
            f"{where}: unknown layout letter or malformed count in {layout!r} near {bad[:8]!r} "
            "(letters are m/M Mamba-2, t/T attention, each followed by a layer count)"
        )
    return [(a, int(n)) for a, n in tokens]


def layout_depth(layout: list) -> int:
    """Number of stages (d_model entries) an arch_layout needs."""
    if not isinstance(layout, list) or len(layout) not in (1, 3):
        raise DnahnetInputError(
            f"arch_layout: each level must be [main] or [encoder, main, decoder], got {layout!r}"
        )
    if len(layout) == 1:
        if not isinstance(layout[0], str):
            raise DnahnetInputError(f"arch_layout: innermost level must be a layout string, got {layout[0]!r}")
        return 1
    if not isinstance(layout[0], str) or not isinstance(layout[2], str) or not isinstance(layout[1], list):
        raise DnahnetInputError(
            f"arch_layout: expected [encoder string, [inner...], decoder string], got {layout!r}"
        )
    return 1 + layout_depth(layout[1])


def _per_stage(value: Any, n_stages: int, name: str) -> list:
    """Broadcast a scalar to one value per stage, or check a list's length."""
    if isinstance(value, list):
        if len(value) != n_stages:
            raise DnahnetInputError(
                f"{name}: expected {n_stages} values (one per stage), got {len(value)}"
            )
        return list(value)
    return [value] * n_stages


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)  # numpy integers too


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


_SCALAR_CHECKS = {
    "int": (_is_int, "a whole number"),
    "float": (_is_number, "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "dict": (lambda v: isinstance(v, dict), "a mapping"),
}


def _type_ok(value: Any, annotation: str) -> tuple[bool, str]:
    """Whether `value` fits a dataclass field annotation such as 'int', 'list[float] | None'; and its description."""
    options = [a.strip() for a in annotation.split("|")]
    descriptions = []
    for option in options:
        if option == "None":
            descriptions.append("null")
            if value is None:
                return True, ""
            continue
        if option.startswith("list[") and option.endswith("]"):
            check, what = _SCALAR_CHECKS[option[5:-1]]
            descriptions.append(f"a list of {what.removeprefix('a ')}s")
            if isinstance(value, list) and all(check(v) for v in value):
                return True, ""
            continue
        check, what = _SCALAR_CHECKS[option]
        descriptions.append(what)
        if check(value):
            return True, ""
    return False, " or ".join(descriptions)


def check_field_types(obj: Any, what: str) -> None:
    """Refuse, naming the field, a config value of the wrong type (a string for a number, 2.5 steps, [32.0, 48] widths)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        ok, expected = _type_ok(value, str(f.type))
        if not ok:
            raise DnahnetInputError(f"{what} {f.name}: expected {expected}, got {value!r}")


def _check_int_entries(mapping: dict, keys: tuple[str, ...], where: str) -> None:
    """Values of `mapping[key]` (or each of a per-stage list) must be whole numbers."""
    for key in keys:
        if key in mapping:
            value = mapping[key]
            values = value if isinstance(value, list) else [value]
            if not all(_is_int(v) for v in values):
                raise DnahnetInputError(f"{where}.{key}: expected whole numbers, got {value!r}")


@dataclass
class SSMConfig:
    """Mamba-2 settings (shared by all stages, as in the official configs)."""

    d_state: int = 128
    d_conv: int = 4
    expand: int = 2
    headdim: int = 64
    ngroups: int = 1
    chunk_size: int = 256


@dataclass
class ModelConfig:
    """An H-Net (or isotropic) byte-level language model."""

    arch_layout: list = field(default_factory=lambda: ["m4", ["T22"], "m4"])
    d_model: list[int] = field(default_factory=lambda: [1024, 1536])
    d_intermediate: list[int] = field(default_factory=lambda: [0, 4096])
    vocab_size: int = 256
    ssm_cfg: dict = field(default_factory=lambda: {"chunk_size": 256, "d_conv": 4, "d_state": 128, "expand": 2})
    attn_cfg: dict = field(
        default_factory=lambda: {"num_heads": [16, 16], "rotary_emb_dim": [32, 48], "window_size": [1023, -1]}
    )
    tie_embeddings: bool = False
    # dnahnet additions (defaults keep official files valid)
    target_ratio: list[float] | None = None
    ratio_loss_weight: float = 0.03
    lr_multiplier: list[float] | None = None
    chunking: str = "dynamic"
    k: int | None = None
    # SwiGLU hidden width = d_intermediate rounded up to a multiple of this, as the official
    # SwiGLU does (multiple_of=128); 1 builds the widths as written (see `mlp_width`).
    mlp_multiple_of: int = OFFICIAL_MLP_MULTIPLE

    def __post_init__(self) -> None:
        check_field_types(self, "model config")
        _check_int_entries(self.ssm_cfg, tuple(f.name for f in dataclasses.fields(SSMConfig)), "ssm_cfg")
        _check_int_entries(self.attn_cfg, ("num_heads", "rotary_emb_dim", "window_size"), "attn_cfg")
        self.validate()

    # ----- derived views -------------------------------------------------
    @property
    def n_stages(self) -> int:
        return layout_depth(self.arch_layout)

    @property
    def n_routed(self) -> int:
        return self.n_stages - 1

    def stage_layout(self, stage: int) -> list:
        layout = self.arch_layout
        for _ in range(stage):
            layout = layout[1]
        return layout

    def ssm(self) -> SSMConfig:
        known = {f.name for f in dataclasses.fields(SSMConfig)}
        return SSMConfig(**{k: v for k, v in self.ssm_cfg.items() if k in known})

    def attn(self, stage: int) -> dict:
        """Attention settings of one stage (lists in attn_cfg are per stage)."""
        cfg = {"num_heads": 8, "rotary_emb_dim": 0, "window_size": -1}
        for key, value in self.attn_cfg.items():
            cfg[key] = value[stage] if isinstance(value, list) else value
        return cfg

    def mlp_width(self, stage: int) -> int:
        """Hidden width of the SwiGLU in a stage's upper-case (M/T) layers: d_intermediate rounded
        up to a multiple of `mlp_multiple_of`, so official configs build the official shapes.
        0 still builds norm2 and empty fc1/fc2 weights (as officially), adding nothing."""
        m = self.mlp_multiple_of
        return -(-self.d_intermediate[stage] // m) * m

    @property
    def learned_routing(self) -> bool:
        """Routed stages place their own boundaries (dynamic chunking): routing weights and a ratio loss."""
        return self.chunking == "dynamic" and self.n_routed > 0

    @property
    def fixed_chunk(self) -> int | None:
        """k of the fixed-chunk baseline (a boundary every k positions), else None."""
        return int(self.k) if self.chunking == "every_k" else None

    def expected_compression(self) -> list[float]:
        """L/M per routed stage before any data is seen: k under fixed chunking, else the target ratios."""
        if self.fixed_chunk is not None:
            return [float(self.fixed_chunk)] * self.n_routed
        return self.stage_target_ratios()

    def stage_target_ratios(self) -> list[float]:
        if self.target_ratio is not None:
            return [float(r) for r in self.target_ratio]
        return [3.0] * self.n_routed if self.n_routed <= 1 else [3.0] + [2.0] * (self.n_routed - 1)

    def stage_lr_multipliers(self) -> list[float]:
        if self.lr_multiplier is not None:
            return [float(m) for m in self.lr_multiplier]
        return [1.0] * self.n_stages

    # ----- validation ------------------------------------------------------
    def validate(self) -> None:
        n = self.n_stages  # validates nesting
        for stage in range(n):
            layout = self.stage_layout(stage)
            parts = layout if len(layout) == 3 else layout[:1]
            for pos, part in zip(("encoder", "main", "decoder") if len(layout) == 3 else ("main",), parts):
                if isinstance(part, str):
                    parse_layout_string(part, where=f"arch_layout stage {stage} {pos}")
        if not isinstance(self.d_model, list) or len(self.d_model) != n:
            raise DnahnetInputError(f"d_model: expected {n} values (one per stage), got {self.d_model!r}")
        if not isinstance(self.d_intermediate, list) or len(self.d_intermediate) != n:
            raise DnahnetInputError(
                f"d_intermediate: expected {n} values (one per stage), got {self.d_intermediate!r}"
            )
        for i in range(1, n):
            if self.d_model[i] < self.d_model[i - 1]:
                raise DnahnetInputError(
                    f"d_model: stage {i} width {self.d_model[i]} is smaller than stage {i-1} width {self.d_model[i-1]}"
                )
        if self.vocab_size < 1:
            raise DnahnetInputError(f"vocab_size: must be positive, got {self.vocab_size}")
        has_attention = any(self._stage_letters(s) & {"t", "T"} for s in range(n))
        for key, value in self.attn_cfg.items():
            if isinstance(value, list) and has_attention:
                _per_stage(value, n, f"attn_cfg.{key}")
        ssm = self.ssm()
        for stage in range(n):
            d = self.d_model[stage]
            letters = self._stage_letters(stage)
            if letters & {"m", "M"}:
                d_inner = ssm.expand * d
                if d_inner % ssm.headdim != 0:
                    raise DnahnetInputError(
                        f"ssm_cfg.headdim: expand*d_model = {d_inner} at stage {stage} is not divisible by headdim {ssm.headdim}"
                    )
                if (d_inner // ssm.headdim) % ssm.ngroups != 0:
                    raise DnahnetInputError(f"ssm_cfg.ngroups: {ssm.ngroups} does not divide the number of heads at stage {stage}")
            if letters & {"t", "T"}:
                attn = self.attn(stage)
                heads = attn["num_heads"]
                if heads < 1 or d % heads != 0:
                    raise DnahnetInputError(
                        f"attn_cfg.num_heads: d_model {d} at stage {stage} is not divisible by {heads} heads"
                    )
                rot = attn["rotary_emb_dim"]
                if rot < 0 or rot > d // heads or rot % 2:
                    raise DnahnetInputError(
                        f"attn_cfg.rotary_emb_dim: {rot} at stage {stage} must be even and at most the head dimension {d // heads}"
                    )
            if letters & {"M", "T"} and self.d_intermediate[stage] < 0:
                raise DnahnetInputError(f"d_intermediate: negative width at stage {stage}")
        if self.target_ratio is not None:
            if len(self.target_ratio) != self.n_routed:
                raise DnahnetInputError(
                    f"target_ratio: expected {self.n_routed} values (one per routed stage), got {self.target_ratio!r}"
                )
            for r in self.target_ratio:
                if not (isinstance(r, (int, float)) and r > 1.0 and math.isfinite(r)):
                    raise DnahnetInputError(f"target_ratio: each value must be > 1, got {r!r}")
        if self.lr_multiplier is not None and len(self.lr_multiplier) != n:
            raise DnahnetInputError(
                f"lr_multiplier: expected {n} values (one per stage), got {self.lr_multiplier!r}"
            )
        if self.chunking not in ("dynamic", "every_k"):
            raise DnahnetInputError(f"chunking: must be 'dynamic' or 'every_k', got {self.chunking!r}")
        if self.chunking == "every_k" and (self.k is None or int(self.k) < 1):
            raise DnahnetInputError("k: chunking 'every_k' needs a positive integer k")
        if self.ratio_loss_weight < 0:
            raise DnahnetInputError(f"ratio_loss_weight: must be >= 0, got {self.ratio_loss_weight}")
        if self.mlp_multiple_of < 1:
            raise DnahnetInputError(f"mlp_multiple_of: must be >= 1, got {self.mlp_multiple_of}")

    def _stage_letters(self, stage: int) -> set[str]:
        layout = self.stage_layout(stage)
        parts = [layout[0], layout[2]] if len(layout) == 3 else [layout[0]]
        return {a for p in parts for a, _ in parse_layout_string(p)}

    # ----- I/O ---------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DnahnetInputError(f"model config: unknown field(s) {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> "ModelConfig":
        try:
            return cls.from_dict(read_mapping(path))
        except DnahnetInputError as exc:
            raise in_file(exc, path) from None

    @classmethod
    def from_checkpoint_json(cls, path: str | Path) -> "ModelConfig":
        """A checkpoint's config.json. Those written before `mlp_multiple_of` existed (it is always
        written now) built their MLP widths as written, so they load as `mlp_multiple_of` 1."""
        data = read_mapping(path)
        data.setdefault("mlp_multiple_of", 1)
        return cls.from_dict(data)

    def to_dict(self, *, official_only: bool = False) -> dict:
        """All fields; `official_only`: the official H-Net fields, with the MLP widths as built."""
        d = dataclasses.asdict(self)
        if official_only:
            for key in ("target_ratio", "ratio_loss_weight", "lr_multiplier", "chunking", "k", "mlp_multiple_of"):
                d.pop(key)
            d["d_intermediate"] = [self.mlp_width(s) for s in range(self.n_stages)]
            for stage, width in enumerate(d["d_intermediate"]):
                if width % OFFICIAL_MLP_MULTIPLE and self._stage_letters(stage) & {"M", "T"}:
                    raise DnahnetInputError(
                        f"d_intermediate: width {width} at stage {stage} is not a multiple of {OFFICIAL_MLP_MULTIPLE}, "
                        "so the official H-Net would build a different MLP from this config"
                    )
        return d

    def to_json(self, path: str | Path) -> None:
        from dnahnet.io.atomic import atomic_open

        with atomic_open(path) as fh:
            json.dump(self.to_dict(), fh, indent=2)
            fh.write("\n")


@dataclass
class DataConfig:
    """Where training windows come from and how they are cut."""

    mode: str = "dna"  # "dna" or "text"
    genome: list[str] = field(default_factory=list)  # FASTA/GenBank paths, folders or a TSV manifest
    text: list[str] = field(default_factory=list)  # text mode: files or folders of raw bytes
    seq_len: int = 1024
    split_by: str = "fraction"  # "chromosomes", "bed", "fraction" or "genome" (whole genomes of a corpus)
    train_chroms: list[str] = field(default_factory=list)
    valid_chroms: list[str] = field(default_factory=list)
    test_chroms: list[str] = field(default_factory=list)
    train_bed: str | None = None
    valid_bed: str | None = None
    test_bed: str | None = None
    valid_fraction: float = 0.05  # of each chromosome (its end), "fraction" splits
    test_fraction: float = 0.05
    max_n_fraction: float = 0.1
    rc_prob: float = 0.5
    softmask_weight: float = 1.0  # loss weight of lower-case (repeat) bases
    genome_weighting: str = "length"  # corpus sampling: "length" (per base) or "uniform" (per genome)
    valid_genomes: list[str] = field(default_factory=list)  # split_by "genome": named held-out genomes
    test_genomes: list[str] = field(default_factory=list)  # (else whole genomes by valid/test_fraction)
    eval_windows: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        check_field_types(self, "data config")
        checks = [
            (self.seq_len >= 2, "seq_len", "must be at least 2 (the first base of a window is never predicted)"),
            (self.eval_windows >= 0, "eval_windows", "must be >= 0"),
            (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1, "valid_fraction", "must be in [0, 1)"),
            (0 <= self.max_n_fraction <= 1, "max_n_fraction", "must be in [0, 1]"),
            (0 <= self.rc_prob <= 1, "rc_prob", "must be in [0, 1]"),
        ]
        for ok, name, message in checks:
            if not ok:
                raise DnahnetInputError(f"data config {name}: {message}, got {getattr(self, name)!r}")


@dataclass
class TrainConfig:
    """How long and how fast to train; budgets are in bases so runs mean the same anywhere."""

    tokens_per_step: int = 16384
    micro_batch_size: int = 8  # per rank; accumulation = tokens_per_step / (seq_len * micro * world)
    steps: int | None = None
    bases: int | None = None
    lr: float = 3e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    schedule: str = "cosine"  # "cosine" or "wsd"
    warmup_steps: int = 50
    decay_fraction: float = 0.2  # wsd: final fraction of steps that decays
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100
    checkpoint_every: int = 200
    log_every: int = 10
    device: str = "auto"
    precision: str = "auto"  # "auto", "fp32" or "bf16"
    distributed: str = "ddp"  # "ddp" or "fsdp" (under torchrun)
    seed: int = 0
    keep_best: bool = True  # also keep a `best` checkpoint (lowest held-out bits per base)
    num_workers: int = 0  # data-loading processes per rank; 0 reads windows in the training process
    compile: bool = False  # torch.compile each Mamba-2/attention block (dnahnet.nn.compile); compile time logged as compile_s

    def __post_init__(self) -> None:
        check_field_types(self, "train config")
        checks = [
            (self.steps is None or self.steps >= 1, "steps", "must be positive"),
            (self.bases is None or self.bases >= 1, "bases", "must be positive"),
            (self.eval_every >= 0 and self.checkpoint_every >= 0 and self.log_every >= 0, "eval_every",
             "eval_every, checkpoint_every and log_every must be >= 0"),
            (self.tokens_per_step >= 1, "tokens_per_step", "must be positive"),
            (self.micro_batch_size >= 1, "micro_batch_size", "must be positive"),
            (self.lr > 0 and math.isfinite(self.lr), "lr", "must be a positive number"),
            (self.weight_decay >= 0, "weight_decay", "must be >= 0"),
            (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1/beta2", "must be in [0, 1)"),
            (self.schedule in ("cosine", "wsd"), "schedule", "must be 'cosine' or 'wsd'"),
            (self.warmup_steps >= 0, "warmup_steps", "must be >= 0"),
            (0 <= self.decay_fraction <= 1, "decay_fraction", "must be in [0, 1]"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]"),
            (self.grad_clip >= 0, "grad_clip", "must be >= 0 (0 = no clipping)"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device", "must be auto, cpu or cuda"),
            (self.precision in ("auto", "fp32", "bf16"), "precision", "must be auto, fp32 or bf16"),
            (self.distributed in ("ddp", "fsdp"), "distributed", "must be 'ddp' or 'fsdp'"),
            (self.num_workers >= 0, "num_workers", "must be >= 0"),
        ]
        for ok, name, message in checks:
            if not ok:
                raise DnahnetInputError(f"train config {name}: {message}, got {getattr(self, name.split('/')[0])!r}")


def read_mapping(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise DnahnetInputError("config file not found", file=str(path))
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise DnahnetInputError(f"not valid JSON/YAML ({exc})", file=str(path)) from None
    if not isinstance(data, dict):
        raise DnahnetInputError("config must be a mapping of fields", file=str(path))
    return data


def dataclass_from_dict(cls, d: dict, *, what: str):
    """Build a DataConfig/TrainConfig from a dict, rejecting unknown fields by name."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise DnahnetInputError(f"{what}: unknown field(s) {', '.join(unknown)}")
    return cls(**d)


OVERRIDE_SECTIONS = ("model", "train", "data")


def parse_override_value(text: str) -> Any:
    """A `--set` value as JSON (3e-4, [256, 384], true, null), else a YAML scalar (wsd, 1.5e-3), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) else text


def apply_overrides(run: dict, overrides: list[str]) -> dict:
    """`section.field=value` (`train.lr=3e-4`, `model.d_model=[256,384]`, `model.ssm_cfg.d_state=64`)
    applied to a copy of a run mapping {"model", "train", "data"}; fields are checked when the configs are built."""
    import copy

    run = copy.deepcopy(run)
    for item in overrides:
        key, sep, text = item.partition("=")
        path = key.strip().split(".")
        if not sep or len(path) < 2 or not all(path) or path[0] not in OVERRIDE_SECTIONS:
            raise DnahnetInputError(f"--set {item!r}: expected SECTION.FIELD=VALUE with SECTION one of "
                                    f"{', '.join(OVERRIDE_SECTIONS)}, e.g. train.lr=3e-4 or model.d_model=[256,384]")
        node = run.setdefault(path[0], {})
        for part in path[1:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise DnahnetInputError(f"--set {item!r}: {part} is not a group of settings")
            node = node.setdefault(part, {})
        node[path[-1]] = parse_override_value(text)
    return run


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name_or_path: str | Path) -> dict:
    """A preset name (see `list_presets`) or a JSON/YAML path -> its raw mapping.

    A preset file holds {"model": {...}, "train": {...}, "data": {...}} or, for
    official H-Net configs, the model mapping alone.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.json"
        if not path.exists():
            raise DnahnetInputError(
                f"unknown preset {name_or_path!r}; available: {', '.join(list_presets())}"
            )
    data = read_mapping(path)
    if "arch_layout" in data:
        data = {"model": data}
    return data


def in_file(exc: DnahnetInputError, source: str | Path) -> DnahnetInputError:
    """`exc` located in the config file (or preset) it came from, unless it already names a file."""
    if exc.file is not None:
        return exc
    return DnahnetInputError(exc.message, file=str(source), record=exc.record, position=exc.position)


def model_config_from_preset(name_or_path: str | Path) -> ModelConfig:
    try:
        return ModelConfig.from_dict(load_preset(name_or_path)["model"])
    except DnahnetInputError as exc:
        raise in_file(exc, name_or_path) from None
