"""A model whose weights are cast to bf16 (`--dtype bf16` on CUDA casts them; `dnahnet bench inference --device
cuda` too) runs every block kind: the float32 residual stream reaches each bf16 projection through a norm that
writes the weights' dtype. Found on an H200 (2026-12-04): every such forward failed with "expected mat1 and mat2
to have the same dtype". Checked on the CPU, where bf16 matmuls run too."""

import pytest
import torch

from dnahnet.nn.norm import RMSNorm, RMSNormGated
from dnahnet.perf.inference import bench_net, random_dna

ISOTROPIC = ["bench-transformer", "bench-mamba2"]
HNETS = ["bench-hnet-1stage", "bench-hnet-2stage", "bench-hnet-1stage-swa", "bench-hnet-1stage-mamba2-m1"]


@pytest.mark.parametrize("name", ISOTROPIC + HNETS)
def test_a_bf16_cast_model_runs_and_returns_bf16_logits(name):
    ids = torch.as_tensor(random_dna(512, 0)).long()[None]
    with torch.inference_mode():
        out = bench_net(name, 0).to(dtype=torch.bfloat16)(ids)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits.float()).all()


@pytest.mark.parametrize("name", ["bench-transformer", "bench-hnet-1stage-mamba2"])
def test_a_bf16_cast_model_with_the_fused_cpu_kernels_asked_for_runs_them_only_where_weights_are_float32(name):
    """The kernels compute with float32 weights: a cast model keeps PyTorch's path for its norms and conv."""
    from dnahnet.nn import cpu_kernel
    from dnahnet.nn.norm import RMSNorm
    from dnahnet.perf.scan_stand_in import mamba2_layers

    if not cpu_kernel.available():
        pytest.skip("the fused CPU kernels cannot be built here (no C++ compiler or ninja)")
    net = bench_net(name, 0).to(dtype=torch.bfloat16)
    for module in [*mamba2_layers(net), *(m for m in net.modules() if isinstance(m, RMSNorm))]:
        module.cpu_kernel = True
    ids = torch.as_tensor(random_dna(512, 0)).long()[None]
    with torch.inference_mode():
        want = bench_net(name, 0).to(dtype=torch.bfloat16)(ids).logits
        got = net(ids).logits
    assert torch.equal(got, want)


@pytest.mark.parametrize("name", ISOTROPIC)
def test_a_bf16_cast_isotropic_model_stays_near_float32(name):
    """No routing decision can flip: the logits differ by bf16 rounding alone."""
    ids = torch.as_tensor(random_dna(512, 1)).long()[None]
    with torch.inference_mode():
        want = bench_net(name, 0)(ids).logits
        got = bench_net(name, 0).to(dtype=torch.bfloat16)(ids).logits.float()
    assert float((got - want).norm() / want.norm()) < 2e-2


def test_norms_write_the_weights_dtype_only_for_16_bit_weights():
    x = torch.randn(2, 5, 8)
    assert RMSNorm(8)(x).dtype == torch.float32
    assert RMSNorm(8)(x.bfloat16()).dtype == torch.float32  # float32 weights under autocast keep float32
    assert RMSNorm(8).to(torch.bfloat16)(x).dtype == torch.bfloat16
    assert RMSNorm(8).double()(x.double()).dtype == torch.float64
    gated = RMSNormGated(8, group_size=8).to(torch.bfloat16)
    assert gated(x, x).dtype == torch.bfloat16 and RMSNormGated(8, group_size=8)(x, x).dtype == torch.float32
