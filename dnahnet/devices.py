"""One `--device` rule and one precision rule for every command: training, inference and benchmarks pick alike."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from dnahnet.errors import DnahnetInputError


def resolve_device(device: str | torch.device | None = "auto", local_rank: int | None = None) -> torch.device:
    """None/"auto": CUDA when available, else CPU. An unknown or unavailable device is a one-line user error.

    `local_rank` (torchrun) turns a bare "cuda" into this process's GPU, `cuda:<local_rank>`.
    """
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise DnahnetInputError(f"--device: expected auto, cpu, cuda or cuda:N, got {str(device)!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DnahnetInputError(f"--device {device}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is None and local_rank is not None:
        return torch.device("cuda", local_rank)
    return dev


# ----- precision ---------------------------------------------------------------------------------------
# bf16 on CPU is worth running only where the CPU has native bf16 dot products; elsewhere PyTorch
# emulates it (correct, but slower than fp32). One detector decides for every command.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")  # x86 (AVX-512 BF16, AMX), then ARM
CPU_BF16_ENV = "DNAHNET_CPU_BF16"  # "1" forces bf16 as supported (benchmarks on emulating CPUs), "0" as unsupported
PRECISIONS = ("fp32", "bf16", "fp16", "fp64")
_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "float64": "fp64"}
_TORCH = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}


def _cpu_flags() -> set[str]:
    """CPU feature names from PyTorch's cpuinfo (torch.cpu.get_capabilities) and /proc/cpuinfo where present."""
    flags: set[str] = set()
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        flags |= {name for name, value in caps().items() if value is True}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags |= set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return flags


def cpu_bf16_support() -> tuple[bool, str]:
    """(whether bf16 autocast on this CPU is native, and why): the one place that decides it."""
    forced = os.environ.get(CPU_BF16_ENV)
    if forced in ("0", "1"):
        return forced == "1", f"forced by {CPU_BF16_ENV}={forced}"
    present = [f for f in CPU_BF16_FLAGS if f in _cpu_flags()]
    if present:
        return True, f"the CPU has {'/'.join(present)}"
    return False, "the CPU has neither avx512_bf16 nor amx_bf16 (bf16 would be emulated, slower than fp32)"


@dataclass(frozen=True)
class Precision:
    """How a forward pass runs: the parameters' dtype and, for mixed precision, the autocast dtype."""

    name: str  # fp32, bf16, fp16 or fp64: what the user asked for, resolved
    weights: torch.dtype  # parameters are cast to this
    autocast: torch.dtype | None  # matmuls run in this under torch.autocast (weights stay fp32)
    reason: str  # why this precision ran, for train.json, score headers and logs

    def context(self, device: torch.device):
        """torch.autocast for mixed precision, else a no-op context."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast)

    def describe(self) -> str:
        mode = f"{self.name} autocast (weights {_name(self.weights)})" if self.autocast is not None else self.name
        return f"{mode}: {self.reason}"


def _name(dtype: torch.dtype) -> str:
    return next(k for k, v in _TORCH.items() if v == dtype)


def default_training_precision(device: torch.device) -> str:
    """What `train.precision: auto` trains in: bf16 autocast on CUDA and on a CPU with native bf16, fp32 elsewhere.

    On a CPU with avx512_bf16, bf16 autocast made training steps 1.32-1.43x faster than fp32 (paired rounds)
    with held-out bits/base within a few 1e-4 of fp32's at equal steps and seeds (bench/RESULTS.md); where
    bf16 is emulated it is several times slower, so those CPUs stay fp32. Scoring keeps fp32 as its default
    (`resolve_precision`'s auto): there bf16 gained 1.08x and moves per-base scores by up to 0.07 bits.
    """
    if device.type == "cuda" or (device.type == "cpu" and cpu_bf16_support()[0]):
        return "bf16"
    return "fp32"


def resolve_precision(
    requested: str | torch.dtype | None, device: torch.device, *, option: str = "--dtype", auto: str = "fp32",
    cast_on_cuda: bool = True,
) -> Precision:
    """The precision a command runs in; a one-line user error where the device cannot run it.

    `auto` is what None/"auto" means (fp32 for inference; the trainer passes bf16 on CUDA).
    On CPU, bf16 is autocast over fp32 weights, and only where `cpu_bf16_support()` says
    the CPU has native bf16; fp16 is CUDA only. On CUDA, low precision casts the weights
    (inference, `cast_on_cuda`) or autocasts (training). The routing, the residual
    projection and the dechunk EMA stay fp32 under autocast (dnahnet.nn.hnet).
    """
    asked = requested is not None and str(requested) != "auto"
    if isinstance(requested, torch.dtype):
        name = next((k for k, v in _TORCH.items() if v == requested), None)
    else:
        name = str(requested) if asked else auto
        name = _ALIASES.get(name, name)
    if name not in PRECISIONS:
        raise DnahnetInputError(f"{option}: unknown precision {str(requested)!r} (use auto, {', '.join(PRECISIONS)})")
    how = f"asked by {option}" if asked else f"default ({option} auto)"
    if name in ("fp32", "fp64"):
        why = how
        if device.type == "cpu" and name == "fp32":
            native, because = cpu_bf16_support()
            why += f"; bf16 is {'native' if native else 'not native'} here: {because}"
        return Precision(name, _TORCH[name], None, why)
    if device.type == "cuda":
        if cast_on_cuda:
            return Precision(name, _TORCH[name], None, f"{how}; CUDA")
        return Precision(name, torch.float32, _TORCH[name], f"{how}; CUDA")
    if name == "fp16":
        raise DnahnetInputError(f"{option} fp16 is only supported on CUDA; on CPU use bf16 or fp32")
    native, because = cpu_bf16_support()
    if not native:
        raise DnahnetInputError(f"{option} bf16 on CPU: {because}; use fp32 (or set {CPU_BF16_ENV}=1 to run it anyway)")
    return Precision("bf16", torch.float32, torch.bfloat16, f"{how}; {because}")
