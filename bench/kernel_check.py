"""Check the pure-PyTorch Mamba-2 and dechunk EMA against mamba_ssm's Triton kernels on a GPU.

    python -m bench.kernel_check            # exit 0: passed or skipped (says why), 1: a mismatch

1. `dnahnet.nn.mamba2.Mamba2` (pure path, `use_kernels=False`) against
   `mamba_ssm.modules.mamba2.Mamba2` with the same state dict, bf16 on CUDA.
2. `dnahnet.nn.chunking.ema_scan` against `mamba_chunk_scan_combined` with
   dt = -log(1 - P), x = z / dt, A = -1, B = P, C = 1 (one head of width D, one group, one state).

Skips with a clear message when CUDA or mamba_ssm is absent (so it smoke-runs on CPU).
"""

from __future__ import annotations

import sys

import torch

BF16_TOL = {"atol": 5e-2, "rtol": 5e-2}  # relative error of bf16 activations through a Mamba-2 layer


def skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "CUDA is not available"
    try:
        import mamba_ssm  # noqa: F401
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "not installed/usable"
        return f"mamba_ssm is not importable ({type(exc).__name__}: {exc})"
    return None


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def check_mamba2(length: int = 1024, d_model: int = 256, seed: int = 0) -> dict:
    from mamba_ssm.modules.mamba2 import Mamba2 as KernelMamba2

    from dnahnet.nn.mamba2 import Mamba2

    torch.manual_seed(seed)
    kw = dict(d_model=d_model, d_state=64, d_conv=4, expand=2, headdim=64, ngroups=1, chunk_size=256)
    ref = KernelMamba2(**kw).cuda().to(torch.bfloat16)
    ours = Mamba2(**kw, use_kernels=False).cuda().to(torch.bfloat16)
    ours.load_state_dict(ref.state_dict(), strict=True)  # same parameter names and shapes
    u = torch.randn(2, length, d_model, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        want, got = ref(u), ours(u)
    err = rel_err(got, want)
    return {"check": "Mamba2 pure vs mamba_ssm", "rel_err": err, "ok": err < BF16_TOL["rtol"]}


def check_ema(length: int = 4096, d: int = 256, seed: int = 0) -> dict:
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    from dnahnet.nn.chunking import P_MIN, ema_scan

    torch.manual_seed(seed)
    z = torch.randn(2, length, d, device="cuda", dtype=torch.bfloat16)
    P = torch.rand(2, length, device="cuda").clamp(P_MIN, 1 - P_MIN)
    dt = -torch.log1p(-P)  # (B, L)
    x = (z.float() / dt[..., None]).to(torch.bfloat16)[:, :, None, :]  # (B, L, 1 head, D)
    A = -torch.ones(1, device="cuda")
    Bm = P[:, :, None, None].to(torch.bfloat16)  # (B, L, 1 group, 1 state)
    Cm = torch.ones_like(Bm)
    with torch.no_grad():
        want = mamba_chunk_scan_combined(x, dt[..., None], A, Bm, Cm, chunk_size=256)[:, :, 0]
        got = ema_scan(z, P)
    err = rel_err(got, want)
    return {"check": "dechunk EMA ema_scan vs mamba_chunk_scan_combined", "rel_err": err, "ok": err < BF16_TOL["rtol"]}


def run_checks() -> dict:
    """{"skipped": reason} or {"checks": [...], "ok": bool}."""
    reason = skip_reason()
    if reason:
        return {"skipped": reason, "ok": True, "checks": []}
    checks = [check_mamba2(), check_ema()]
    return {"skipped": None, "ok": all(c["ok"] for c in checks), "checks": checks,
            "device": torch.cuda.get_device_name()}


def main() -> int:
    res = run_checks()
    if res["skipped"]:
        print(f"kernel_check: SKIPPED: {res['skipped']}")
        return 0
    print(f"kernel_check on {res['device']} (bf16, relative tolerance {BF16_TOL['rtol']}):")
    for c in res["checks"]:
        print(f"  {'ok  ' if c['ok'] else 'FAIL'} {c['check']}: relative error {c['rel_err']:.2e}")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
