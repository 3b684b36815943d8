"""Diagnostic arms for bench/kernel_quality.py: a dnahnet command run with one difference between the fused CPU
kernels and pure PyTorch taken away, to find which part of the kernel path moves a training result.

    DNAHNET_CPU_KERNEL=0 python -m bench.kernel_arms pure-fp32-scan pretrain --config cpu-hnet-mamba2 ...
    DNAHNET_CPU_KERNEL=1 python -m bench.kernel_arms mamba2-kernels pretrain --config cpu-hnet-mamba2 ...

- `pure-fp32-scan`: pure PyTorch, with the chunked SSD scan computed outside bf16 autocast, in float32 as the
  fused kernel computes it. Under autocast the PyTorch scan's matmuls otherwise run in bf16.
- `mamba2-kernels`: the kernels for the Mamba-2 layers only (conv, scan, gated norm); the RMSNorms, attention's
  rotary embedding, the MLP's gate and the routing's similarities stay in PyTorch.
- `routing-pytorch`: every kernel but the routing's similarities.
- `norms-pytorch`: every kernel but the RMSNorms of the residual streams.
- `gate-pytorch`: every kernel but the MLP's gate value * silu(gate).

`-m` needs the repository root importable: run from it, or with it on PYTHONPATH, as bench/kernel_quality.py's
`--arms` runs it.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, NamedTuple

from dnahnet.nn import ssd
from dnahnet.nn.attention import CausalMHA
from dnahnet.nn.chunking import RoutingModule
from dnahnet.nn.isotropic import SwiGLU
from dnahnet.nn.norm import RMSNorm


class Arm(NamedTuple):
    """The DNAHNET_CPU_KERNEL setting an arm runs under, and what it changes in this process before the command."""

    setting: str
    apply: Callable[[], None]


def scan_out_of_autocast() -> None:
    """The PyTorch scan's two forms (`dnahnet.nn.ssd`) run with autocast off, on the float32 tensors they are given."""
    def out_of_autocast(form: Callable) -> Callable:
        @functools.wraps(form)
        def run(x, *args, **kwargs):
            with ssd.full_precision(x):
                return form(x, *args, **kwargs)
        return run

    for name in ("_ssd_factored", "_per_head_scan"):
        setattr(ssd, name, out_of_autocast(getattr(ssd, name)))


def switch_off(*classes: type) -> Callable[[], None]:
    """An arm's change: every module of these classes built from then on has its kernel switch off."""
    def switched_off(init: Callable) -> Callable:
        @functools.wraps(init)
        def build(self, *args, **kwargs):
            init(self, *args, **kwargs)
            self.cpu_kernel = False
        return build

    def apply() -> None:
        for module in classes:
            module.__init__ = switched_off(module.__init__)
    return apply


ARMS: dict[str, Arm] = {
    "pure-fp32-scan": Arm("0", scan_out_of_autocast),
    "mamba2-kernels": Arm("1", switch_off(RMSNorm, CausalMHA, SwiGLU, RoutingModule)),  # all but Mamba2's switch
    "routing-pytorch": Arm("1", switch_off(RoutingModule)),
    "norms-pytorch": Arm("1", switch_off(RMSNorm)),
    "gate-pytorch": Arm("1", switch_off(SwiGLU)),
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ARMS:
        raise SystemExit(f"usage: python -m bench.kernel_arms {{{','.join(ARMS)}}} COMMAND [ARGS...]")
    ARMS[argv[0]].apply()
    from dnahnet_cli.main import entry

    sys.argv = ["dnahnet", *argv[1:]]
    entry()


if __name__ == "__main__":
    main()
