"""The fused CPU kernels: most of a Mamba-2 layer between its projections, and, eager, the small operators
around the matmuls elsewhere (residual RMSNorm, rotary embedding, MLP gate, routing similarities); built on first
use, on by default where they build.

`csrc/ssd_chunk_kernel.cpp` computes `ssd._per_head_scan` in one operator (`scan`): the state each chunk leaves
behind, the states passed from chunk to chunk, and each chunk's outputs as `ssd._ChunkOutput` computes them,
forward and backward, reading x, B and C where they lie (slices of the conv output) and keeping each chunk's
(q x q) blocks in cache (bench/RESULTS.md, "A fused CPU kernel for the SSD scan", "The whole scan in one
operator"); the intra-chunk parts are also operators of their own (`chunk_states`, `chunk_output`). It also
begins and ends the layer: the causal depthwise conv with its SiLU (`conv_silu`), and the skip term with the gated
RMSNorm (`gated_norm`), each in one pass over the rows where PyTorch, eager or traced, makes several over the whole
tensor, the weight gradients among them as column sums ("The fused CPU kernel for the whole Mamba-2 layer").

Eager only (traced, Inductor fuses these itself), it also computes: the RMSNorm of every block's residual stream
(`rms_norm`), one pass per row where PyTorch makes about six forward and eight backward; attention's split of its
fused projection with the rotary embedding of q and k (`rotary_qkv`); the Transformer MLP's gate value * silu(gate)
(`swiglu`); and the routing module's cosine similarities of adjacent positions (`adjacent_cosine`). Each takes one
pass forward and one backward, and the backwards write whole gradients where PyTorch concatenates parts ("Kernels
for attention's rotary embedding, the MLP's gate and the routing").

It is C++ compiled on the machine that runs it (torch.utils.cpp_extension, a C++ compiler and ninja; about 40 s
once, then cached by torch in its extensions directory under a name that carries the CPU's instruction set, since
`-march=native` code built on one machine may not run on another that shares the cache). It is on unless turned
off (DNAHNET_CPU_KERNEL=0, a module's `cpu_kernel = False`, or `ssd_chunked(..., cpu_kernel=False)`): eager bf16
training steps of the cpu presets with Mamba-2 layers ran 1.27-1.44x faster with it, and held-out bits/base
showed no detectable difference (bench/RESULTS.md, "The fused CPU kernels on by default"). It is built on the
first CPU computation that takes it, or by `dnahnet.nn.compile.compile_layers` before a CPU model is traced;
a model that runs on a GPU never builds it. It computes in float32, also under bf16
autocast (Mamba-2 hands the scan float32 inputs, and `ssd_chunked` turns autocast off around the kernel, where the
PyTorch scan's small matmuls would run in bf16 for no gain; bench/RESULTS.md). There the conv reads its input, and
the norm its gate z, as bf16 slices of the projection, and the gated norm (like a block's RMSNorm before a
projection, the rotary split and the MLP gate) writes bf16 for the projection that reads it: float32 results
rounded once, without the casts' copies. The scan takes the step sizes dt apart from x and scales by them inside,
so the layer makes no dt * x tensor. Where it cannot be built the process says why once on stderr and stays pure
PyTorch; with DNAHNET_CPU_KERNEL=require a failed build is an error instead. Its operators carry shape
functions and autograd formulas, so `torch.compile` traces each as one call.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

from dnahnet.errors import DnahnetInputError

ENV = "DNAHNET_CPU_KERNEL"  # unset or "1": use it where it builds; "require": fail if it does not; "0": off
SOURCE = Path(__file__).with_name("csrc") / "ssd_chunk_kernel.cpp"
# Row lengths the kernel's register-blocked products are instantiated for (q, head size p, state n).
SIZES = (16, 32, 64, 128, 256)
_LIBRARY = "dnahnet_cpu"


def _setting() -> str:
    """DNAHNET_CPU_KERNEL as set: "" (unset), "0", "1" or "require"; anything else is a one-line error."""
    value = os.environ.get(ENV, "").strip().lower()
    if value not in ("", "0", "1", "require"):
        raise DnahnetInputError(f"{ENV}={value!r} is not understood: use 1 (where it builds, as when unset), require, or 0")
    return value


def requested() -> bool:
    """Whether the environment leaves the kernel on: unset, 1 or require (0: off)."""
    return _setting() != "0"


def applies(x: torch.Tensor, B: torch.Tensor, q: int) -> bool:
    """Whether the kernel computes this scan: float32 inputs on CPU (under autocast too), sizes it was built for."""
    return (
        x.device.type == "cpu"
        and x.dtype == B.dtype == torch.float32
        and q in SIZES and x.shape[-1] in SIZES and B.shape[-1] in SIZES
    )


def _compile_flags() -> list[str]:
    """-march=native (it runs where it is built) and the widest vector type ATen has for this CPU."""
    capability = torch.backends.cpu.get_cpu_capability()
    vector = {"AVX512": ["-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"],
              "AVX2": ["-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"]}.get(capability, [])
    return ["-O3", "-march=native", "-fopenmp", *vector]


_STATE: dict[str, str | None] = {}  # "why": None once built and registered, else why it is not


def cpu_features() -> str:
    """The CPU's instruction-set line (Linux /proc/cpuinfo "flags", or "Features" on Arm), else the machine and
    processor names: what `-march=native` code depends on."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[-1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def build_name() -> str:
    """The extension's name in torch's build cache, one per instruction set: a cache shared by machines with
    different CPUs (an NFS home on a cluster) would otherwise hand one CPU's build to another, which may not
    have its instructions."""
    return "dnahnet_cpu_kernels_" + hashlib.sha256(cpu_features().encode()).hexdigest()[:12]


def _built_before(name: str) -> bool:
    """Whether torch's cache holds a build of `name` (possibly of older sources, which torch rebuilds). It asks a
    private torch helper where the cache lies; if that fails, it answers no: the only cost is the note."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return any(Path(_get_build_directory(name, verbose=False)).glob(f"{name}*.so"))
    except Exception:  # noqa: BLE001 - a changed private helper must not stop the build
        return False


def load() -> str | None:
    """Build (or reuse torch's cached build of) the kernel and register it, once per process;
    None on success, else why not."""
    if "why" not in _STATE:
        _STATE["why"] = _build()
    return _STATE["why"]


def ready() -> bool:
    """Whether the kernel was built and registered in this process (no build: safe inside a trace)."""
    return "why" in _STATE and _STATE["why"] is None


def _build() -> str | None:
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        return "no C++ compiler on PATH"
    # torch runs `ninja` from PATH; pip's (the cpu-kernel extra) lies beside the interpreter, which a
    # virtualenv run without activation (make test) does not put on PATH.
    beside = Path(sys.executable).parent
    if shutil.which("ninja") is None and shutil.which("ninja", path=str(beside)):
        os.environ["PATH"] = os.pathsep.join([str(beside), os.environ.get("PATH", "")])
    try:
        from torch.utils.cpp_extension import load as build, verify_ninja_availability

        verify_ninja_availability()
        name = build_name()
        if not _built_before(name):
            print(f"dnahnet: building the fused CPU kernels for this CPU (once, about 40 s; {ENV}=0 runs without them)",
                  file=sys.stderr)
        build(name=name, sources=[str(SOURCE)], extra_cflags=_compile_flags(),
              extra_ldflags=["-fopenmp"], is_python_module=False, verbose=False)
    except Exception as err:  # noqa: BLE001 - any build failure leaves the pure path
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}: {lines[-1] if lines else ''}"
    _register()
    return None


def switches(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules of `model` with a `cpu_kernel` switch: Mamba-2 layers, RMSNorms, attention, MLP gates, routing."""
    return [module for module in model.modules() if hasattr(module, "cpu_kernel")]


def switch(model: torch.nn.Module, on: bool) -> int:
    """Put every module of `model` with a switch on the kernels, or off them whatever DNAHNET_CPU_KERNEL says;
    returns how many switches were set."""
    found = switches(model)
    for module in found:
        module.cpu_kernel = on
    return len(found)


def in_use(asked: bool | None) -> bool:
    """Whether a computation runs on the kernel: asked for (None: by the environment) and built. Traced, only if
    already built: a build inside a trace would stall it (`compile_layers` builds it before tracing a CPU model)."""
    if not (requested() if asked is None else asked):
        return False
    return ready() if torch.compiler.is_compiling() else available()


def available(require: bool = False) -> bool:
    """Whether the kernel is loaded, building it if needed; says once why not, or raises if `require`."""
    why = load()
    if why is None:
        return True
    if require or _setting() == "require":
        raise DnahnetInputError(f"the fused CPU kernels could not be built ({why}); set {ENV}=0 to run without them")
    _warn_once(why)
    return False


def describe() -> str:
    """What computes the CPU scan's intra-chunk work in this process, for run records (train.json): the two
    paths round differently, so a run says which it took."""
    if not requested():
        return f"PyTorch ({ENV}=0)"
    why = load()
    if why is not None:
        return f"PyTorch (the fused CPU kernel could not be built: {why})"
    return (f"the fused CPU kernel ({ENV}={_setting() or 'unset, on by default'}) for float32 scans with q, head and state sizes in {SIZES}, "
            "for the causal conv and the gated norm where channel, group and head sizes are multiples of 16, "
            "and, eager, for the residual RMSNorm where the width is a multiple of 16, for attention's rotary "
            "embedding, the MLP's gate and the routing's cosine similarities")


@functools.cache
def _warn_once(why: str) -> None:
    print(f"dnahnet: the fused CPU kernels are unavailable ({why}); running pure PyTorch ({ENV}=0 runs without them "
          "and silences this)", file=sys.stderr)


def _register() -> None:
    """Shape functions (for torch.compile's tracing) and autograd formulas of the C++ operators."""
    ops = getattr(torch.ops, _LIBRARY)

    @torch.library.register_fake(f"{_LIBRARY}::chunk_states")
    def _(B, A, x, dt):
        b, l, h, p = x.shape
        _, c, g, r, _ = A.shape
        return x.new_empty(b, c, g, r, B.shape[-1], p)

    @torch.library.register_fake(f"{_LIBRARY}::chunk_states_backward")
    def _(dstates, B, A, x, dt):
        return [B.new_empty(B.shape), A.new_empty(A.shape), x.new_empty(x.shape), dt.new_empty(dt.shape)]

    @torch.library.register_fake(f"{_LIBRARY}::chunk_output")
    def _(C, B, A, x, dt, carried):
        return x.new_empty(x.shape)

    @torch.library.register_fake(f"{_LIBRARY}::chunk_output_backward")
    def _(dy, C, B, A, x, dt, carried):
        return [C.new_empty(C.shape), B.new_empty(B.shape), A.new_empty(A.shape), x.new_empty(x.shape),
                dt.new_empty(dt.shape), carried.new_empty(carried.shape)]

    @torch.library.register_fake(f"{_LIBRARY}::scan")
    def _(C, B, A, x, dt, initial):
        b, c = A.shape[:2]
        return x.new_empty(x.shape), x.new_empty(b, c + 1, *initial.shape[1:])

    @torch.library.register_fake(f"{_LIBRARY}::scan_backward")
    def _(dy, dpassed, C, B, A, x, dt, passed):
        return [C.new_empty(C.shape), B.new_empty(B.shape), A.new_empty(A.shape), x.new_empty(x.shape),
                dt.new_empty(dt.shape), passed.new_empty(passed[:, 0].shape)]

    @torch.library.register_fake(f"{_LIBRARY}::gated_norm")
    def _(y, x, D, z, weight, group, eps):
        return y.new_empty(y.shape, dtype=z.dtype)

    @torch.library.register_fake(f"{_LIBRARY}::gated_norm_backward")
    def _(dout, y, x, D, z, weight, group, eps):
        return [y.new_empty(y.shape), y.new_empty(y.shape), torch.empty_like(D), z.new_empty(y.shape),
                torch.empty_like(weight)]

    @torch.library.register_fake(f"{_LIBRARY}::rms_norm")
    def _(x, weight, eps, bf16_out):
        return x.new_empty(x.shape, dtype=torch.bfloat16 if bf16_out else torch.float32)

    @torch.library.register_fake(f"{_LIBRARY}::rms_norm_backward")
    def _(dout, x, weight, eps):
        return [x.new_empty(x.shape), weight.new_empty(weight.shape)]

    @torch.library.register_fake(f"{_LIBRARY}::conv_silu")
    def _(x, weight, bias):
        return x.new_empty(x.shape, dtype=torch.float32)

    @torch.library.register_fake(f"{_LIBRARY}::conv_silu_backward")
    def _(dout, x, weight, bias):
        return [x.new_empty(x.shape), torch.empty_like(weight), torch.empty_like(bias)]

    @torch.library.register_fake(f"{_LIBRARY}::rotary_qkv")
    def _(qkv, cos, sin):
        b, l, _, h, dh = qkv.shape
        return [qkv.new_empty(b, l, h, dh) for _ in range(3)]

    @torch.library.register_fake(f"{_LIBRARY}::rotary_qkv_backward")
    def _(dq, dk, dv, cos, sin):
        b, l, h, dh = dq.shape
        return dq.new_empty(b, l, 3, h, dh)

    @torch.library.register_fake(f"{_LIBRARY}::adjacent_cosine")
    def _(qk, eps):
        return qk.new_empty(qk.shape[0], qk.shape[1] - 1)

    @torch.library.register_fake(f"{_LIBRARY}::adjacent_cosine_backward")
    def _(dout, qk, eps):
        return qk.new_empty(qk.shape)

    @torch.library.register_fake(f"{_LIBRARY}::swiglu")
    def _(h):
        return h.new_empty(h.shape[0], h.shape[1] // 2)

    @torch.library.register_fake(f"{_LIBRARY}::swiglu_backward")
    def _(dout, h):
        return h.new_empty(h.shape)

    def save_inputs(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def save_norm_inputs(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:5])
        ctx.group, ctx.eps = inputs[5], inputs[6]

    torch.library.register_autograd(f"{_LIBRARY}::chunk_states",
                                    lambda ctx, d: tuple(ops.chunk_states_backward(d, *ctx.saved_tensors)),
                                    setup_context=save_inputs)
    torch.library.register_autograd(f"{_LIBRARY}::chunk_output",
                                    lambda ctx, d: tuple(ops.chunk_output_backward(d, *ctx.saved_tensors)),
                                    setup_context=save_inputs)
    def save_scan(ctx, inputs, output):
        C, B, A, x, dt, _ = inputs
        ctx.save_for_backward(C, B, A, x, dt, output[1])
        ctx.set_materialize_grads(False)  # an unused final state's gradient stays None, not a tensor of zeros

    torch.library.register_autograd(
        f"{_LIBRARY}::scan",
        lambda ctx, dy, dpassed: tuple(ops.scan_backward(
            torch.zeros_like(ctx.saved_tensors[3]) if dy is None else dy, dpassed, *ctx.saved_tensors)),
        setup_context=save_scan)
    def save_rms_inputs(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.eps = inputs[2]

    torch.library.register_autograd(
        f"{_LIBRARY}::rms_norm",
        lambda ctx, d: (*ops.rms_norm_backward(d, *ctx.saved_tensors, ctx.eps), None, None),
        setup_context=save_rms_inputs)
    def save_tables(ctx, inputs, output):
        ctx.save_for_backward(inputs[1], inputs[2])

    torch.library.register_autograd(
        f"{_LIBRARY}::rotary_qkv",
        lambda ctx, grads: (ops.rotary_qkv_backward(*grads, *ctx.saved_tensors), None, None),
        setup_context=save_tables)
    def save_cosine_input(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.eps = inputs[1]

    torch.library.register_autograd(
        f"{_LIBRARY}::adjacent_cosine",
        lambda ctx, d: (ops.adjacent_cosine_backward(d, *ctx.saved_tensors, ctx.eps), None),
        setup_context=save_cosine_input)
    torch.library.register_autograd(f"{_LIBRARY}::swiglu",
                                    lambda ctx, d: ops.swiglu_backward(d.to(ctx.saved_tensors[0].dtype), *ctx.saved_tensors),
                                    setup_context=save_inputs)
    torch.library.register_autograd(f"{_LIBRARY}::conv_silu",
                                    lambda ctx, d: tuple(ops.conv_silu_backward(d, *ctx.saved_tensors)),
                                    setup_context=save_inputs)
    torch.library.register_autograd(
        f"{_LIBRARY}::gated_norm",
        lambda ctx, d: (*ops.gated_norm_backward(d, *ctx.saved_tensors, ctx.group, ctx.eps), None, None),
        setup_context=save_norm_inputs)


def _step_sizes(x: torch.Tensor, dt: torch.Tensor | None) -> torch.Tensor:
    """The scan's dt (b, l, h), contiguous; ones where x comes scaled already."""
    return x.new_ones(x.shape[:3]) if dt is None else dt.contiguous()


def chunk_states(B: torch.Tensor, A_cum: torch.Tensor, x: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
    """The state each chunk leaves behind from zero, sum_s exp(A_end - A_s) dt_s B_s x_s^T, held (n x p).

    B: (b, l, g, n); A_cum: (b, c, g, r, q), the within-chunk cumulative log-decay (l = c q);
    x: (b, l, h, p); dt: (b, l, h), the step sizes x is scaled by inside (None: x is scaled already).
    Returns (b, c, g, r, n, p).
    """
    return getattr(torch.ops, _LIBRARY).chunk_states(_as_read(B), A_cum.contiguous(), _as_read(x), _step_sizes(x, dt))


def chunk_output(C: torch.Tensor, B: torch.Tensor, A_cum: torch.Tensor, x: torch.Tensor, carried: torch.Tensor,
                 dt: torch.Tensor | None = None) -> torch.Tensor:
    """y = ((C B^T) * decay) (dt x) + exp(A_cum) * (C carried) in each chunk, as `ssd._ChunkOutput` computes it
    on x scaled by dt.

    C, B: (b, l, g, n); A_cum: (b, c, g, r, q); x: (b, l, h, p); carried: (b, c, g, r, n, p), the
    state carried into each chunk; dt: (b, l, h) or None, as for `chunk_states`. Returns y (b, l, h, p).
    """
    return getattr(torch.ops, _LIBRARY).chunk_output(_as_read(C), _as_read(B), A_cum.contiguous(),
                                                     _as_read(x), _step_sizes(x, dt), carried.contiguous())


def scan(C: torch.Tensor, B: torch.Tensor, A_cum: torch.Tensor, x: torch.Tensor, dt: torch.Tensor | None,
         initial: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole chunked scan in one call: `chunk_states`, the states passed from chunk to chunk from `initial`
    (b, g, r, n, p), and `chunk_output`. Returns y (b, l, h, p) and the passed states (b, c + 1, g, r, n, p), slot k
    the state carried into chunk k and slot c the final one. Eager, x, B and C are read where they lie (slices of
    the conv output: no copies), and the backward adds every path's gradient into one dx, dB and dC.
    """
    return getattr(torch.ops, _LIBRARY).scan(_as_read(C), _as_read(B), A_cum.contiguous(), _as_read(x),
                                             _step_sizes(x, dt), initial.contiguous())


def _as_read(t: torch.Tensor) -> torch.Tensor:
    """x, B or C as an operator takes it: eager, as it lies (the kernel reads slices and copies only what its last
    two dimensions do not pack); traced, contiguous in the graph, where Inductor checks that each input's strides
    are those it planned for and its own layout of a slice may differ from eager's."""
    return t.contiguous() if torch.compiler.is_compiling() else t


def conv_applies(xbc: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the conv kernel computes a layer's causal conv and SiLU: on CPU, whole vectors of channels, float32
    or, under bf16 autocast, bfloat16 (the scan takes its output in float32 either way), with float32 weights."""
    return (xbc.device.type == "cpu" and xbc.dtype in (torch.float32, torch.bfloat16)
            and xbc.shape[-1] % 16 == 0 and _float32_weights(weight))


def _float32_weights(weight: torch.Tensor) -> bool:
    """The kernels compute with float32 weights and write float32 (or autocast's bf16): a model cast to 16 bits
    (`.to(torch.bfloat16)`, as `--dtype bf16` on CUDA) keeps PyTorch's path, whose norms write its dtype."""
    return weight.dtype == torch.float32


def conv_silu(xbc: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """silu(causal depthwise conv of xbc), as Mamba-2 begins its layer (`mamba2.causal_depthwise_conv` then SiLU),
    in one pass. xbc: (b, l, C) float32 or bfloat16, channels contiguous (a slice of the input projection), read
    where it lies; weight (C, 1, K) and bias float32. Returns float32, as the scan takes it."""
    return getattr(torch.ops, _LIBRARY).conv_silu(xbc, weight.float(), bias.float())


def _eager_on_cpu(t: torch.Tensor, *dtypes: torch.dtype) -> bool:
    """The common condition of the eager-only kernels: not inside a trace (there Inductor fuses these operators
    itself), `t` on CPU and of one of `dtypes`."""
    return not torch.compiler.is_compiling() and t.device.type == "cpu" and t.dtype in dtypes


def rms_norm_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the RMSNorm kernel computes a norm of the residual stream: eager, float32 on CPU, whole vectors of
    channels, float32 weights."""
    return _eager_on_cpu(x, torch.float32) and x.shape[-1] % 16 == 0 and _float32_weights(weight)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, bf16_out: bool = False) -> torch.Tensor:
    """x * rsqrt(mean(x^2) + eps) * weight over the last dimension (`norm.RMSNorm`) in one pass per row, forward and
    backward. x: (..., d) float32, last dimension contiguous; returns float32, or bfloat16 with `bf16_out` (what
    a bf16 projection reads under autocast: the values of casting the float32 result, without the cast's copy)."""
    d = x.shape[-1]
    out = getattr(torch.ops, _LIBRARY).rms_norm(x.reshape(-1, d), weight.float(), eps, bf16_out)
    return out.reshape(x.shape)


def rotary_applies(qkv: torch.Tensor) -> bool:
    """Whether the rotary kernel splits and rotates an attention layer's fused projection: eager (traced, Inductor
    fuses the rotation itself), on CPU, float32 or bfloat16 (autocast's output of the projection)."""
    return _eager_on_cpu(qkv, torch.float32, torch.bfloat16)


def rotary_qkv(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k and v (b, l, h, dh), contiguous in qkv's type, from the fused projection qkv (b, l, 3, h, dh), q and k
    rotated as `attention.apply_rotary` rotates them by cos, sin (l, dh_rot / 2), in one pass forward and one
    backward (which writes qkv's gradient whole: no concatenations). Computes in float32 and rounds once."""
    q, k, v = getattr(torch.ops, _LIBRARY).rotary_qkv(qkv, cos.float(), sin.float())
    return q, k, v


def cosine_applies(qk: torch.Tensor) -> bool:
    """Whether the cosine kernel computes the routing's adjacent similarities: eager, float32 on CPU (the routing's
    precision, also under autocast), q and k of whole vectors of channels."""
    return _eager_on_cpu(qk, torch.float32) and qk.dim() == 3 and qk.shape[-1] % (2 * 16) == 0


def adjacent_cosine(qk: torch.Tensor, eps: float) -> torch.Tensor:
    """cos(q_{t-1}, k_t) for t = 1..l-1 (b, l - 1) from qk (b, l, 2d), q then k per position, each vector scaled by
    1 / max(|v|, eps) as F.normalize scales it: the routing module's similarities, one pass forward and one
    backward."""
    return getattr(torch.ops, _LIBRARY).adjacent_cosine(qk, eps)


def swiglu_applies(h: torch.Tensor) -> bool:
    """Whether the gate kernel computes an MLP's value * silu(gate): eager, on CPU, float32 or bfloat16 (fc1's output
    under autocast), halves of whole vectors."""
    return _eager_on_cpu(h, torch.float32, torch.bfloat16) and h.shape[-1] > 0 and h.shape[-1] % (2 * 16) == 0


def swiglu(h: torch.Tensor) -> torch.Tensor:
    """value * silu(gate) for h (..., 2w) = (value, gate), in h's type, computed in float32 and rounded once; its
    backward writes h's gradient whole, where PyTorch concatenates the two halves' gradients."""
    w2 = h.shape[-1]
    return getattr(torch.ops, _LIBRARY).swiglu(h.reshape(-1, w2)).reshape(*h.shape[:-1], w2 // 2)


def norm_applies(y: torch.Tensor, channels: int, group: int, headdim: int, weight: torch.Tensor) -> bool:
    """Whether the gated-norm kernel computes a layer's output norm: float32 on CPU, whole vectors of channels,
    float32 weights."""
    return (
        y.device.type == "cpu" and y.dtype == torch.float32
        and channels % 16 == 0 and group % 16 == 0 and headdim % 16 == 0 and _float32_weights(weight)
    )


def gated_norm(y: torch.Tensor, x: torch.Tensor, D: torch.Tensor, z: torch.Tensor, weight: torch.Tensor,
               group: int, eps: float) -> torch.Tensor:
    """rmsnorm((y + D x) * silu(z)) * weight over groups of `group` channels, as Mamba-2 ends its layer
    (`RMSNormGated` after the scan's skip term) in one pass per row.

    y, x: (..., d) float32; z: (..., d) float32 or bfloat16 (other types are cast to float32); last dimensions
    contiguous (x and z may be slices of wider tensors); D: one value per head of d / D.numel() channels.
    Returns (..., d) in z's type: under bf16 autocast the bf16 output projection reads it without a cast, the same
    values as casting a float32 result.
    """
    if z.dtype not in (torch.float32, torch.bfloat16):
        z = z.float()
    d = y.shape[-1]
    out = getattr(torch.ops, _LIBRARY).gated_norm(y.reshape(-1, d), x.reshape(-1, d), D, z.reshape(-1, d),
                                                  weight, group, eps)
    return out.reshape(y.shape)
