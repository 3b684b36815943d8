"""The recursive H-Net language model: checkpoint layout, incremental generation, causality, gradients."""

import pytest
import torch

from dnahnet.config import ModelConfig, model_config_from_preset
from dnahnet.errors import DnahnetInputError
from dnahnet.nn.hnet import HNetLM, parameter_groups, stage_of_parameter

SSM = {"d_state": 16, "expand": 2, "chunk_size": 8, "headdim": 16}

CONFIGS = {
    "1stage": dict(arch_layout=["m2", ["T2"], "m2"], d_model=[32, 48], d_intermediate=[0, 96], ssm_cfg=SSM,
                   attn_cfg={"num_heads": [2, 2], "rotary_emb_dim": [4, 8], "window_size": [-1, 5]}),
    "2stage": dict(arch_layout=["m2", ["T1m1", ["T2"], "m1T1"], "m2"], d_model=[32, 64, 96], d_intermediate=[0, 128, 192],
                   ssm_cfg=SSM, attn_cfg={"num_heads": [2, 2, 2], "rotary_emb_dim": [4, 4, 8], "window_size": [-1, 7, -1]}),
    "transformer": dict(arch_layout=["T3"], d_model=[32], d_intermediate=[64],
                        attn_cfg={"num_heads": 2, "rotary_emb_dim": 8, "window_size": -1}),
    "mamba2": dict(arch_layout=["m3"], d_model=[32], d_intermediate=[0], ssm_cfg=SSM),
    "every_k": dict(arch_layout=["m2", ["T2"], "m2"], d_model=[32, 48], d_intermediate=[0, 96], ssm_cfg=SSM,
                    chunking="every_k", k=3, attn_cfg={"num_heads": [2, 2], "rotary_emb_dim": [4, 8], "window_size": [-1, -1]}),
}


def _model(name: str, seed: int = 0) -> HNetLM:
    """A float64 model whose routing and residual paths are non-trivial (random, not identity/zero)."""
    return _built(ModelConfig(**CONFIGS[name]), seed)


def _built(config: ModelConfig, seed: int = 0) -> HNetLM:
    """`config` as `_model` builds it: float64, routing and residual paths made non-trivial."""
    torch.manual_seed(seed)
    m = HNetLM(config).double()
    for module in m.modules():
        if hasattr(module, "q_proj_layer"):
            torch.nn.init.normal_(module.q_proj_layer.weight, std=0.3)
            torch.nn.init.normal_(module.k_proj_layer.weight, std=0.3)
        if hasattr(module, "residual_proj"):
            torch.nn.init.normal_(module.residual_proj.weight, std=0.05)
    return m


def test_state_dict_matches_the_official_checkpoint_layout():
    cfg = ModelConfig(arch_layout=["m2", ["T1m1", ["T2"], "m1T1"], "m2"], d_model=[32, 64, 96], d_intermediate=[0, 128, 192],
                      ssm_cfg={"d_state": 16, "expand": 2},
                      attn_cfg={"num_heads": [2, 2, 2], "rotary_emb_dim": [4, 4, 8], "window_size": [-1, -1, -1]})
    shapes = {k: tuple(v.shape) for k, v in HNetLM(cfg).state_dict().items()}
    expected = {
        "embeddings.weight": (256, 32),
        "backbone.encoder.layers.0.norm1.weight": (32,),
        "backbone.encoder.layers.0.mixer.dt_bias": (1,),
        "backbone.encoder.layers.0.mixer.A_log": (1,),
        "backbone.encoder.layers.0.mixer.D": (1,),
        "backbone.encoder.layers.0.mixer.in_proj.weight": (161, 32),
        "backbone.encoder.layers.0.mixer.conv1d.weight": (96, 1, 4),
        "backbone.encoder.layers.0.mixer.conv1d.bias": (96,),
        "backbone.encoder.layers.0.mixer.norm.weight": (64,),
        "backbone.encoder.layers.0.mixer.out_proj.weight": (32, 64),
        "backbone.encoder.rmsnorm.weight": (32,),
        "backbone.routing_module.q_proj_layer.weight": (32, 32),
        "backbone.routing_module.k_proj_layer.weight": (32, 32),
        "backbone.residual_proj.weight": (32, 32),
        "backbone.residual_proj.bias": (32,),
        "backbone.main_network.pad_dimension": (32,),
        "backbone.main_network.encoder.layers.0.mixer.Wqkv.weight": (192, 64),
        "backbone.main_network.encoder.layers.0.mixer.out_proj.weight": (64, 64),
        "backbone.main_network.encoder.layers.0.norm2.weight": (64,),
        "backbone.main_network.encoder.layers.0.mlp.fc1.weight": (256, 64),
        "backbone.main_network.encoder.layers.0.mlp.fc2.weight": (64, 128),
        "backbone.main_network.main_network.pad_dimension": (32,),
        # d_intermediate 192 -> 256: the official SwiGLU rounds its width up to a multiple of 128
        "backbone.main_network.main_network.main_network.layers.0.mlp.fc1.weight": (512, 96),
        "backbone.main_network.main_network.main_network.layers.0.mlp.fc2.weight": (96, 256),
        "backbone.main_network.main_network.main_network.layers.1.mixer.Wqkv.weight": (288, 96),
        "backbone.main_network.main_network.main_network.rmsnorm.weight": (96,),
        "backbone.decoder.layers.1.mixer.in_proj.weight": (161, 32),
        "backbone.decoder.rmsnorm.weight": (32,),
        "lm_head.weight": (256, 32),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    assert not any(k.endswith(".bias") and "conv1d" not in k and "residual_proj" not in k for k in shapes)
    # A state dict saved from one model loads strictly into a fresh one.
    HNetLM(cfg).load_state_dict(HNetLM(cfg).state_dict(), strict=True)


def _official_mlp_shapes(cfg: ModelConfig) -> dict[str, tuple]:
    """norm2/mlp names and shapes the official H-Net builds, written from its rules (hnet/modules/block.py,
    mlp.py): every upper-case layer has norm2 and a SwiGLU of width ceil(d_intermediate / 128) * 128
    (so d_intermediate 0 gives empty fc1/fc2); lower-case layers have neither."""
    import re

    shapes = {}

    def stack(prefix: str, layout: str, d: int, d_int: int) -> None:
        i = 0
        for letter, count in re.findall(r"([mMtT])(\d+)", layout):
            for _ in range(int(count)):
                if letter.isupper():
                    width = (d_int + 127) // 128 * 128
                    shapes[f"{prefix}.layers.{i}.norm2.weight"] = (d,)
                    shapes[f"{prefix}.layers.{i}.mlp.fc1.weight"] = (2 * width, d)
                    shapes[f"{prefix}.layers.{i}.mlp.fc2.weight"] = (d, width)
                i += 1

    def level(prefix: str, layout: list, stage: int) -> None:
        d, d_int = cfg.d_model[stage], cfg.d_intermediate[stage]
        if len(layout) == 1:
            stack(f"{prefix}.main_network", layout[0], d, d_int)
            return
        stack(f"{prefix}.encoder", layout[0], d, d_int)
        stack(f"{prefix}.decoder", layout[2], d, d_int)
        level(f"{prefix}.main_network", layout[1], stage + 1)

    level("backbone", cfg.arch_layout, 0)
    return shapes


@pytest.mark.parametrize("d_intermediate", [[0, 128, 192], [0, 0, 200], [0, 100, 129]])
def test_official_format_config_builds_the_official_mlp_names_and_shapes(tmp_path, d_intermediate):
    """Widths that are not multiples of 128 round up, and an M/T layer with d_intermediate 0 still has
    norm2 and empty fc1/fc2, so an official state dict loads strictly."""
    official = {"arch_layout": ["m1", ["T1m1", ["M1T2"], "m1T1"], "m1"], "d_model": [32, 64, 96],
                "d_intermediate": d_intermediate, "vocab_size": 256, "tie_embeddings": False,
                "ssm_cfg": {"chunk_size": 256, "d_conv": 4, "d_state": 16, "expand": 2},
                "attn_cfg": {"num_heads": [2, 2, 2], "rotary_emb_dim": [4, 4, 8], "window_size": [-1, 7, -1]}}
    cfg = ModelConfig.from_dict(official)
    model = HNetLM(cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    built = {k: v for k, v in shapes.items() if ".norm2." in k or ".mlp." in k}
    assert built == _official_mlp_shapes(cfg)
    if d_intermediate[1] == 0:
        assert shapes["backbone.main_network.encoder.layers.0.mlp.fc1.weight"] == (0, 64)
        assert shapes["backbone.main_network.decoder.layers.1.mlp.fc2.weight"] == (64, 0)
    # the empty MLP adds nothing: the stack computes what it computes without it
    block = model.backbone.main_network.encoder.layers[0]
    x = torch.randn(1, 5, 64)
    assert torch.equal(block._mlp(x), x) == (cfg.mlp_width(1) == 0)
    # exported as an official config it rebuilds the same shapes; its state dict loads strictly
    again = HNetLM(ModelConfig.from_dict(cfg.to_dict(official_only=True)))
    again.load_state_dict(model.state_dict(), strict=True)


def test_flops_follow_the_built_mlp_width():
    from dnahnet.nn.flops import count_flops

    base = dict(arch_layout=["T2"], d_model=[64], attn_cfg={"num_heads": 4, "rotary_emb_dim": 16, "window_size": -1})
    rounded = count_flops(ModelConfig(**base, d_intermediate=[130]), 100).forward
    assert rounded == count_flops(ModelConfig(**base, d_intermediate=[256]), 100).forward
    exact = count_flops(ModelConfig(**base, d_intermediate=[130], mlp_multiple_of=1), 100).forward
    assert exact < rounded
    with pytest.raises(DnahnetInputError, match="not a multiple of 128"):
        ModelConfig(**base, d_intermediate=[130], mlp_multiple_of=1).to_dict(official_only=True)


@pytest.mark.parametrize("preset", ["hnet_1stage_L", "hnet_2stage_L"])
def test_official_text_configs_build_with_official_names(preset):
    cfg = model_config_from_preset(preset)
    with torch.device("meta"):
        keys = set(HNetLM(cfg).state_dict())
    assert "backbone.encoder.layers.3.mixer.in_proj.weight" in keys
    assert "backbone.decoder.layers.3.mixer.out_proj.weight" in keys
    inner = "backbone.main_network." if preset == "hnet_1stage_L" else "backbone.main_network.main_network."
    assert inner + "pad_dimension" in keys
    assert inner + "main_network.layers.0.mixer.Wqkv.weight" in keys


@pytest.mark.parametrize("name", list(CONFIGS))
def test_step_loop_reproduces_full_forward_logits(name):
    m = _model(name)
    ids = torch.randint(0, 256, (3, 40), generator=torch.Generator().manual_seed(3))
    full = m(ids).logits
    cache = m.allocate_inference_cache(3, 40, dtype=torch.float64)
    stepped = torch.cat([m.step(ids[:, t : t + 1], cache) for t in range(40)], dim=1)
    assert ((stepped - full).abs().max() / full.abs().max()) < 1e-6


@pytest.mark.parametrize("name", ["1stage", "2stage"])
def test_prefill_of_ragged_rows_then_step_reproduces_forward(name):
    m = _model(name)
    ids = torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, 25, dtype=torch.bool)
    mask[1, 18:] = False  # row 1's prompt is 18 long
    cache = m.allocate_inference_cache(2, 40, dtype=torch.float64)
    m(ids[:, :25], mask=mask, cache=cache)
    stepped = torch.cat([m.step(ids[:, t : t + 1], cache) for t in range(25, 40)], dim=1)
    full0 = m(ids[:1]).logits[0, 25:]
    full1 = m(torch.cat([ids[1:, :18], ids[1:, 25:]], dim=1)).logits[0, 18:33]
    scale = full0.abs().max()
    assert ((stepped[0] - full0).abs().max() / scale) < 1e-6
    assert ((stepped[1] - full1).abs().max() / scale) < 1e-6


def test_step_reports_the_routing_it_placed():
    m = _model("2stage")
    ids = torch.randint(0, 256, (2, 30), generator=torch.Generator().manual_seed(5))
    full = m(ids)
    cache = m.allocate_inference_cache(2, 30, dtype=torch.float64)
    stage1 = []
    for t in range(30):
        m.step(ids[:, t : t + 1], cache)
        stage1.append(cache.last_routing[0].boundary_mask)
    assert torch.equal(torch.stack(stage1, dim=1), full.routing[0].boundary_mask)


@pytest.mark.parametrize("name", ["1stage", "2stage"])
def test_changing_a_base_leaves_every_earlier_logit_unchanged(name):
    """Up to float64 rounding: a later base can move a chunk's factored-decay reference and the blocking of
    a matmul, and on some CPUs (AVX-512 MKL kernels) that changes the last bit of earlier outputs (5.6e-17
    seen); information leaking from the future would move them by many orders more."""
    m = _model(name)
    ids = torch.randint(0, 256, (1, 48), generator=torch.Generator().manual_seed(6))
    base = m(ids).logits
    for t in (0, 17, 31, 47):
        changed = ids.clone()
        changed[0, t] = (changed[0, t] + 101) % 256
        out = m(changed).logits
        torch.testing.assert_close(out[0, :t], base[0, :t], rtol=0, atol=1e-13, msg=f"position {t}")
        if t < 47:
            assert not torch.equal(out[0, t:], base[0, t:])


def test_gradients_reach_the_routing_projections_at_every_stage():
    m = _model("2stage").float()
    ids = torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(7))
    out = m(ids)
    loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 256), ids[:, 1:].reshape(-1)) + out.ratio_loss
    loss.backward()
    for prefix in ("backbone.routing_module", "backbone.main_network.routing_module"):
        for proj in ("q_proj_layer", "k_proj_layer"):
            grad = dict(m.named_parameters())[f"{prefix}.{proj}.weight"].grad
            assert grad is not None and grad.abs().sum() > 0, (prefix, proj)


def test_forward_reports_routing_and_ratio_losses_per_stage():
    m = _model("2stage")
    out = m(torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(8)))
    assert len(out.routing) == 2 and len(out.ratio_losses) == 2
    assert out.routing[0].boundary_mask.shape == (2, 40)
    assert out.routing[1].boundary_mask.shape[1] == int(out.routing[0].boundary_mask.sum(-1).max())
    assert out.routing[0].boundary_mask[:, 0].all()
    expected = m.config.ratio_loss_weight * (out.ratio_losses[0] + out.ratio_losses[1])
    torch.testing.assert_close(out.ratio_loss, expected)


def test_every_k_baseline_places_boundaries_on_a_fixed_grid():
    m = _model("every_k")
    out = m(torch.randint(0, 256, (1, 12)))
    assert out.routing[0].boundary_mask[0].tolist() == [t % 3 == 0 for t in range(12)]


def test_initialisation_routing_identity_residual_zero_embeddings_unit():
    torch.manual_seed(0)
    m = HNetLM(ModelConfig(arch_layout=["m2", ["T4"], "m2"], d_model=[64, 64], d_intermediate=[0, 256], ssm_cfg=SSM,
                           attn_cfg={"num_heads": [4, 4], "rotary_emb_dim": [8, 8], "window_size": [-1, -1]}))
    assert torch.equal(m.backbone.routing_module.q_proj_layer.weight, torch.eye(64))
    assert torch.equal(m.backbone.residual_proj.weight, torch.zeros(64, 64))
    assert m.backbone.residual_proj.weight.dtype == torch.float32
    assert abs(m.embeddings.weight.std().item() - 1.0) < 0.05
    plain = m.backbone.encoder.layers[0].mixer.in_proj.weight.std().item()
    scaled = m.backbone.encoder.layers[0].mixer.out_proj.weight.std().item()
    assert abs(plain - 0.02) < 0.002
    assert abs(scaled - 0.02 / 4**0.5) < 0.002  # encoder + decoder = 4 residual layers on the outer path


def test_parameter_groups_carry_stage_lr_multipliers_and_skip_decay_on_norms():
    cfg = dict(CONFIGS["2stage"], lr_multiplier=[3.0, 1.7, 0.9])
    m = HNetLM(ModelConfig(**cfg))
    groups = parameter_groups(m, weight_decay=0.1)
    by_name = {n: g for g in groups for n in g["names"]}
    assert by_name["backbone.encoder.layers.0.mixer.in_proj.weight"]["lr_multiplier"] == 3.0
    assert by_name["backbone.main_network.encoder.layers.0.mixer.Wqkv.weight"]["lr_multiplier"] == 1.7
    assert by_name["backbone.main_network.main_network.main_network.layers.0.mixer.Wqkv.weight"]["lr_multiplier"] == 0.9
    assert by_name["lm_head.weight"]["lr_multiplier"] == 3.0
    assert by_name["backbone.encoder.rmsnorm.weight"]["weight_decay"] == 0.0
    assert by_name["embeddings.weight"]["weight_decay"] == 0.0
    assert by_name["backbone.encoder.layers.0.mixer.A_log"]["weight_decay"] == 0.0
    assert by_name["backbone.encoder.layers.0.mixer.in_proj.weight"]["weight_decay"] == 0.1
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))
    assert stage_of_parameter("backbone.main_network.main_network.pad_dimension") == 2


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(arch_layout=["m2", ["X2"], "m2"]), "arch_layout"),
        (dict(d_model=[32]), "d_model"),
        (dict(d_intermediate=[0, 96, 5]), "d_intermediate"),
        (dict(target_ratio=[1.0]), "target_ratio"),
        (dict(target_ratio=[3.0, 2.0]), "target_ratio"),
        (dict(d_model=[30, 48]), "headdim"),
        (dict(attn_cfg={"num_heads": [2, 5], "rotary_emb_dim": [4, 8], "window_size": [-1, -1]}), "num_heads"),
        (dict(attn_cfg={"num_heads": [2], "rotary_emb_dim": [4], "window_size": [-1]}), "attn_cfg"),
        (dict(chunking="every_k"), "k"),
        (dict(lr_multiplier=[1.0]), "lr_multiplier"),
    ],
)
def test_bad_configs_fail_at_construction_naming_the_field(change, field):
    with pytest.raises(DnahnetInputError) as err:
        ModelConfig(**dict(CONFIGS["1stage"], **change))
    assert field in str(err.value)
    assert "\n" not in str(err.value)


def test_official_config_round_trips_through_json(tmp_path):
    cfg = model_config_from_preset("hnet_2stage_L")
    path = tmp_path / "config.json"
    cfg.to_json(path)
    assert ModelConfig.from_json(path) == cfg
    assert cfg.d_model == [1024, 1024, 1536] and cfg.attn(2)["window_size"] == -1


@pytest.mark.parametrize("layout, d_model", [(["m2", ["m2"], "m2"], [32, 48]),
                                             (["m2", ["T1m1", ["m2"], "m1T1"], "m2"], [32, 48, 64])])
def test_mamba2_main_networks_may_ignore_the_chunk_mask(layout, d_model, monkeypatch):
    """On CUDA a masked Mamba-2 call without a cache runs mamba_ssm's scan, which does not read the
    mask: the padded chunks' outputs change, and nothing an H-Net computes from its valid positions
    may depend on them. Logits, losses and every gradient must equal the masked run's."""
    from dnahnet.nn.mamba2 import Mamba2

    model = _built(ModelConfig(arch_layout=layout, d_model=d_model, d_intermediate=[0] * len(d_model), ssm_cfg=SSM,
                               attn_cfg={"num_heads": [2] * len(d_model), "rotary_emb_dim": [4] * len(d_model),
                                         "window_size": [-1] * len(d_model)}))
    ids = torch.randint(0, 4, (3, 48))

    def run():
        model.zero_grad()
        out = model(ids)
        loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), ids[:, 1:].reshape(-1))
        (loss + out.ratio_loss).backward()
        return out, loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    masked, masked_loss, masked_grads = run()
    counts = [r.boundary_mask.sum(-1) for r in masked.routing]
    assert any(len(set(c.tolist())) > 1 for c in counts), "rows must differ in chunk count, so the main network is padded"
    calls = []
    forward = Mamba2.forward

    def ignoring_mask(self, u, cache=None, mask=None):
        calls.append(mask is not None and cache is None)
        return forward(self, u, cache, None if cache is None else mask)

    monkeypatch.setattr(Mamba2, "forward", ignoring_mask)
    unmasked, unmasked_loss, unmasked_grads = run()
    assert any(calls)  # some Mamba-2 call did get a mask and dropped it
    assert torch.allclose(unmasked.logits, masked.logits, rtol=1e-10, atol=1e-12)
    assert torch.allclose(unmasked_loss, masked_loss, rtol=1e-12)
    assert masked_grads.keys() == unmasked_grads.keys()
    for name, grad in masked_grads.items():
        assert torch.allclose(unmasked_grads[name], grad, rtol=1e-9, atol=1e-12), name
