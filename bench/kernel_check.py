"""Check the pure-PyTorch Mamba-2 and dechunk EMA against mamba_ssm's Triton kernels on a GPU.

    python -m bench.kernel_check [--json PATH]   # exit 0: passed or skipped (says why), 1: a mismatch

Every variant is measured against one float64 reference, dnahnet's pure path run in float64 on the same
device (tests/ check that path against the step-by-step recurrence): the layer output, the input
gradient and the parameter gradients for one random output cotangent, each as |got - ref| / |ref|
(2-norms; the parameter gradients concatenated). Variants, all with the same weights:

- "dnahnet pure": `dnahnet.nn.mamba2.Mamba2(use_kernels=False)`, the path every CPU run takes;
- "dnahnet + mamba_ssm scan": the same layer with `use_kernels=True`, whose scan is `mamba_chunk_scan_combined`;
- "mamba_ssm Mamba2": `mamba_ssm.modules.mamba2.Mamba2` itself (`use_mem_eff_path=False`: its fused path
  needs the causal_conv1d CUDA package), Triton scan and Triton gated norm;

each in float32 (TF32 off for PyTorch's matmuls; Triton's float32 dots may still use TF32) and under bf16
autocast (how training runs on CUDA). The layer has the presets' Mamba-2 shape (d_model 128, d_state 32,
headdim 32, chunk 64) at length 1000, not a multiple of the chunk. Also checked: the kernel path's prefill
carried across two segments by a cache against one pass; the dechunk EMA (`ema_scan`) against
`mamba_chunk_scan_combined` with dt = -log(1 - P), x = z / dt, A = -1, B = P, C = 1; and a whole
cpu-hnet-mamba2's loss with its Mamba-2 layers on the Triton scan against the pure one.

Passes when every float32 error is under FP32_TOL, every bf16 error under BF16_TOL, and the pure path's
bf16 errors are at most PURE_OVER_KERNEL times mamba_ssm's. Skips with a clear message when CUDA or
mamba_ssm is absent; `measure_layer` runs on any device (tests use it on the CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import torch
from torch import nn

from dnahnet.nn import mamba_ssm_triton

FP32_TOL = 5e-3  # float32 with TF32 dots in Triton: relative errors near 1e-3 at most
BF16_TOL = 5e-2  # bf16 activations through a Mamba-2 layer
PURE_OVER_KERNEL = 2.0  # the pure path's bf16 error may be at most this multiple of mamba_ssm's
LAYER = dict(d_model=128, d_state=32, d_conv=4, expand=2, headdim=32, ngroups=1, chunk_size=64)
LENGTH = 1000
PRECISIONS = ("fp32", "bf16")


def skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if mamba_ssm_triton.load("ops.triton.ssd_combined") is None:
        return f"mamba_ssm's Triton kernels are not importable ({mamba_ssm_triton.import_route})"
    return None


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.double(), want.double()
    if not torch.isfinite(got).all():
        return float("inf")
    return float((got - want).norm() / want.norm().clamp_min(1e-300))


def grads_and_output(layer: nn.Module, u: torch.Tensor, cotangent: torch.Tensor, precision: str) -> dict:
    """The layer's output for `u` and the gradients of <output, cotangent> for u and every parameter, in float64."""
    layer.zero_grad(set_to_none=True)
    u = u.detach().clone().requires_grad_(True)
    autocast = (torch.autocast(u.device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    with autocast:
        out = layer(u)
    (out.double() * cotangent).sum().backward()
    params = {name: p.grad.double() for name, p in layer.named_parameters() if p.grad is not None}
    return {"out": out.detach().double(), "du": u.grad.double(), "params": params}


def compare(got: dict, want: dict) -> dict:
    """Relative errors of output, input gradient and the parameter gradients (concatenated; the worst alone too)."""
    names = sorted(want["params"])
    missing = [n for n in names if n not in got["params"]]
    flat = (lambda d: torch.cat([d["params"][n].flatten() for n in names]))
    per_param = {n: rel_err(got["params"][n], want["params"][n]) for n in names if n not in missing}
    worst = max(per_param, key=per_param.get)
    return {"out": rel_err(got["out"], want["out"]), "du": rel_err(got["du"], want["du"]),
            "dparams": float("inf") if missing else rel_err(flat(got), flat(want)),
            "worst_param": worst, "worst_param_err": per_param[worst], "missing_grads": missing}


def measure_layer(variants: dict[str, nn.Module], device: torch.device, length: int = LENGTH, seed: int = 0,
                  precisions: tuple[str, ...] = PRECISIONS) -> list[dict]:
    """Each variant (same weights as the float64 reference built here) against that reference, per precision."""
    from dnahnet.nn.mamba2 import Mamba2

    torch.manual_seed(seed)
    reference = Mamba2(**LAYER, use_kernels=False).to(device=device, dtype=torch.float64)
    state = reference.state_dict()
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)
    u = torch.randn(2, length, LAYER["d_model"], generator=gen, dtype=torch.float64).to(device)
    cotangent = torch.randn(2, length, LAYER["d_model"], generator=gen, dtype=torch.float64).to(device)
    want = grads_and_output(reference, u, cotangent, "fp32")
    rows = []
    for name, layer in variants.items():
        layer.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        layer.to(device=device, dtype=torch.float32)
        for precision in precisions:
            got = grads_and_output(layer, u.float(), cotangent, precision)
            tol = BF16_TOL if precision == "bf16" else FP32_TOL
            err = compare(got, want)
            worst = max(err["out"], err["du"], err["dparams"])
            rows.append({"check": f"Mamba2 {name}", "precision": precision, **err, "tolerance": tol,
                         "ok": worst < tol and not err["missing_grads"]})
    return rows


def pure_within_kernel(rows: list[dict], pure: str = "Mamba2 dnahnet pure", kernel: str = "Mamba2 mamba_ssm Mamba2") -> dict | None:
    """The pure path's bf16 errors against mamba_ssm's own (the worst ratio of out, du and dparams)."""
    by = {(r["check"], r["precision"]): r for r in rows}
    if (pure, "bf16") not in by or (kernel, "bf16") not in by:
        return None
    p, k = by[(pure, "bf16")], by[(kernel, "bf16")]
    ratio = max(p[key] / max(k[key], 1e-12) for key in ("out", "du", "dparams"))
    return {"check": "pure bf16 error over mamba_ssm's (worst of out, du, dparams)", "precision": "bf16",
            "ratio": ratio, "tolerance": PURE_OVER_KERNEL, "ok": ratio <= PURE_OVER_KERNEL}


def check_cache_split(device: torch.device, length: int = LENGTH, split: int = 600, seed: int = 0) -> dict:
    """The kernel path's prefill in two segments carried by a cache (initial states into the Triton scan)
    against one pass over the whole length, float32."""
    from dnahnet.nn.mamba2 import Mamba2

    torch.manual_seed(seed)
    layer = Mamba2(**LAYER, use_kernels=True).to(device)
    u = torch.randn(2, length, LAYER["d_model"], device=device)
    with torch.no_grad():
        whole = layer(u)
        cache = layer.allocate_inference_cache(2, dtype=torch.float32)
        parts = torch.cat([layer(u[:, :split], cache=cache), layer(u[:, split:], cache=cache)], dim=1)
    err = rel_err(parts, whole)
    return {"check": f"kernel path: prefill {split}+{length - split} through a cache vs one pass", "precision": "fp32",
            "out": err, "tolerance": FP32_TOL, "ok": err < FP32_TOL}


def check_ema(device: torch.device, length: int = 4096, d: int = 256, seed: int = 0) -> list[dict]:
    """`ema_scan` and `mamba_chunk_scan_combined` (the EMA as an SSD scan) against ema_scan in float64."""
    from dnahnet.nn.chunking import P_MIN, ema_scan

    combined = mamba_ssm_triton.load("ops.triton.ssd_combined").mamba_chunk_scan_combined
    torch.manual_seed(seed)
    z = torch.randn(2, length, d, device=device, dtype=torch.float64)
    P = torch.rand(2, length, device=device, dtype=torch.float64).clamp(P_MIN, 1 - P_MIN)
    want = ema_scan(z, P)
    rows = []
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        dt = -torch.log1p(-P.float())  # (B, L)
        x = (z.float() / dt[..., None]).to(dtype)[:, :, None, :]  # (B, L, 1 head, D)
        A = -torch.ones(1, device=device)
        Bm = P.float()[:, :, None, None].to(dtype)  # (B, L, 1 group, 1 state)
        Cm = torch.ones_like(Bm)
        tol = BF16_TOL if precision == "bf16" else FP32_TOL
        with torch.no_grad():
            kernel = combined(x, dt[..., None], A, Bm, Cm, chunk_size=256)[:, :, 0]
            ours = ema_scan(z.to(dtype), P.float())
        for name, got in (("dnahnet ema_scan", ours), ("mamba_chunk_scan_combined", kernel)):
            err = rel_err(got, want)
            rows.append({"check": f"dechunk EMA {name}", "precision": precision, "out": err, "tolerance": tol,
                         "ok": err < tol})
    return rows


def check_model(device: torch.device, preset: str = "cpu-hnet-mamba2", length: int = 1024, seed: int = 0) -> dict:
    """A whole H-Net's training loss (float32) and boundaries with every Mamba-2 layer on mamba_ssm's scan
    against the same model on the pure scan. Boundaries are p >= 0.5 decisions, so a probability within
    rounding of 0.5 may flip; the count of flips is reported beside the loss."""
    import torch.nn.functional as F

    from dnahnet.config import model_config_from_preset
    from dnahnet.nn.hnet import HNetLM
    from dnahnet.perf.scan_stand_in import mamba2_layers

    torch.manual_seed(seed)
    model = HNetLM(model_config_from_preset(preset)).to(device)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.as_tensor(list(b"ACGT"))[torch.randint(0, 4, (4, length), generator=gen)].to(device)
    found = {}
    for kernels in (True, False):
        for layer in mamba2_layers(model):
            layer.use_kernels = kernels
        with torch.no_grad():
            out = model(ids)
        loss = F.cross_entropy(out.logits[:, :-1].reshape(-1, 256).float(), ids[:, 1:].reshape(-1))
        found[kernels] = (float(loss), out.routing[0].boundary_mask, out.logits.float())
    (loss_k, mask_k, logits_k), (loss_p, mask_p, logits_p) = found[True], found[False]
    flips = int((mask_k != mask_p).sum())
    err = abs(loss_k - loss_p) / abs(loss_p)
    return {"check": f"{preset}: loss, Triton scan vs pure ({flips} of {mask_p.numel()} boundaries differ; "
                     f"logits {rel_err(logits_k, logits_p):.1e})", "precision": "fp32", "out": err,
            "tolerance": FP32_TOL, "ok": err < FP32_TOL}


def layer_variants(shape: dict = LAYER) -> dict[str, nn.Module]:
    """One Mamba-2 layer of `shape` three ways, all with the same weights: dnahnet's pure path, dnahnet on
    mamba_ssm's scan, and mamba_ssm's own module (where mamba_ssm's modules load; on the CPU, for a smoke run)."""
    from dnahnet.nn.mamba2 import Mamba2

    torch.manual_seed(0)
    pure = Mamba2(**shape, use_kernels=False)
    variants: dict[str, nn.Module] = {"dnahnet pure": pure, "dnahnet + mamba_ssm scan": Mamba2(**shape, use_kernels=True)}
    variants["dnahnet + mamba_ssm scan"].load_state_dict(pure.state_dict())
    kernel_module = mamba_ssm_triton.load("modules.mamba2")
    if kernel_module is not None:
        variants["mamba_ssm Mamba2"] = kernel_module.Mamba2(**shape, use_mem_eff_path=False)
        variants["mamba_ssm Mamba2"].load_state_dict(pure.state_dict())
    return variants


def run_checks(log=lambda line: None) -> dict:
    """{"skipped": reason} or {"checks": [...], "ok": bool}; `log` gets each check's line as it completes
    (a run cut short by a time limit still shows what it checked)."""
    reason = skip_reason()
    if reason:
        return {"skipped": reason, "ok": True, "checks": []}
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    res = {"skipped": None, "device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "mamba_ssm_import": mamba_ssm_triton.import_route, "checks": []}
    log(f"kernel_check on {res['device']}, torch {res['torch']}, mamba_ssm imported {res['mamba_ssm_import']}; "
        "relative errors against dnahnet's pure path in float64:")

    def add(rows: list[dict]) -> None:
        for row in rows:
            res["checks"].append(row)
            log(f"  {'ok  ' if row['ok'] else 'FAIL'} {row['check']} [{row['precision']}]: {describe(row)}")

    for name, layer in layer_variants().items():
        add(measure_layer({name: layer.to(device)}, device))
    ratio = pure_within_kernel(res["checks"])
    add([ratio] if ratio else [])
    add([check_cache_split(device)])
    add(check_ema(device))
    add([check_model(device)])
    res["ok"] = all(c["ok"] for c in res["checks"])
    return res


def describe(check: dict) -> str:
    if "ratio" in check:
        return f"{check['ratio']:.2f}x (at most {check['tolerance']:g}x)"
    parts = [f"out {check['out']:.2e}"]
    if "du" in check:
        parts += [f"du {check['du']:.2e}", f"dparams {check['dparams']:.2e} (worst {check['worst_param']} "
                  f"{check['worst_param_err']:.2e})"]
    return ", ".join(parts) + f" (tolerance {check['tolerance']:g})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    res = run_checks(log=lambda line: print(line, flush=True))
    if args.json:
        from dnahnet.io.atomic import atomic_open

        with atomic_open(args.json) as fh:
            json.dump(res, fh, indent=2)
    if res["skipped"]:
        print(f"kernel_check: SKIPPED: {res['skipped']}")
        return 0
    print(f"kernel_check: {'all passed' if res['ok'] else 'MISMATCH'} ({len(res['checks'])} checks)")
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
