"""Official H-Net checkpoints (config JSON + state dict) import into dnahnet checkpoint folders."""

import dataclasses
import json

import torch

from dnahnet.config import model_config_from_preset
from dnahnet.nn.hnet import HNetLM
from dnahnet_cli.main import main


def _official_files(tmp_path):
    # tiny-2stage with MLP widths the official rule builds as written (the preset keeps its own 96)
    cfg = dataclasses.replace(model_config_from_preset("tiny-2stage"), d_intermediate=[0, 128, 128], mlp_multiple_of=128)
    torch.manual_seed(0)
    model = HNetLM(cfg)
    (tmp_path / "hnet.json").write_text(json.dumps(cfg.to_dict(official_only=True)))
    torch.save(model.state_dict(), tmp_path / "hnet.pt")
    return model


def test_official_state_dict_converts_and_reproduces_logits(tmp_path):
    import dnahnet

    model = _official_files(tmp_path)
    assert main(["convert", "--config", str(tmp_path / "hnet.json"), "--weights", str(tmp_path / "hnet.pt"),
                 "--out", str(tmp_path / "ck")]) == 0
    loaded = dnahnet.load(tmp_path / "ck", device="cpu")
    ids = torch.randint(0, 256, (1, 64))
    with torch.no_grad():
        assert torch.equal(loaded.net(ids).logits, model.eval()(ids).logits)


def test_mismatched_weights_are_refused_in_one_line(tmp_path, capsys):
    _official_files(tmp_path)
    cfg = json.loads((tmp_path / "hnet.json").read_text())
    cfg["d_model"] = [32, 48, 80]
    (tmp_path / "other.json").write_text(json.dumps(cfg))
    code = main(["convert", "--config", str(tmp_path / "other.json"), "--weights", str(tmp_path / "hnet.pt"),
                 "--out", str(tmp_path / "ck")])
    assert code == 2
    err = capsys.readouterr().err
    assert "do not match the config" in err and err.count("\n") == 1


# An official-format config whose MLP widths are not multiples of 128 and whose stage-1 T layers have
# d_intermediate 0 (norm2 + empty fc1/fc2 officially).
OFFICIAL = {"arch_layout": ["m1", ["T1m1", ["T2"], "m1T1"], "m1"], "d_model": [32, 64, 96], "d_intermediate": [0, 0, 160],
            "vocab_size": 256, "tie_embeddings": False,
            "ssm_cfg": {"chunk_size": 256, "d_conv": 4, "d_state": 16, "expand": 2},
            "attn_cfg": {"num_heads": [2, 2, 2], "rotary_emb_dim": [4, 4, 8], "window_size": [-1, 15, -1]}}


def _official_release(tmp_path):
    """A release as the official training code saves one: parameters carrying omegaconf values."""
    from omegaconf import DictConfig, ListConfig

    from dnahnet.config import ModelConfig

    torch.manual_seed(0)
    model = HNetLM(ModelConfig.from_dict(OFFICIAL)).eval()
    state = {}
    for name, param in model.named_parameters():
        param = torch.nn.Parameter(param.detach().clone(), requires_grad=False)
        param._optim = {"lr_multiplier": ListConfig([3.0, 1.7, 0.9]), "cfg": DictConfig({"arch": ["m1", "T2"]})}
        state[name] = param
    (tmp_path / "hnet.json").write_text(json.dumps(OFFICIAL))
    torch.save(state, tmp_path / "hnet.pt")
    return model


def test_official_pt_holding_omegaconf_converts(tmp_path):
    import dnahnet

    model = _official_release(tmp_path)
    assert model.state_dict()["backbone.main_network.encoder.layers.0.mlp.fc1.weight"].shape == (0, 64)
    assert model.state_dict()["backbone.main_network.main_network.main_network.layers.0.mlp.fc2.weight"].shape == (96, 256)
    # a plain weights-only load refuses the file: that is what the allow-list is for
    try:
        torch.load(tmp_path / "hnet.pt", weights_only=True)
        refused = False
    except Exception:  # noqa: BLE001
        refused = True
    assert refused
    assert main(["convert", "--config", str(tmp_path / "hnet.json"), "--weights", str(tmp_path / "hnet.pt"),
                 "--out", str(tmp_path / "ck")]) == 0
    loaded = dnahnet.load(tmp_path / "ck", device="cpu")
    assert loaded.net.config.mlp_width(1) == 0 and loaded.net.config.mlp_width(2) == 256
    ids = torch.randint(0, 256, (1, 48))
    with torch.no_grad():
        assert torch.equal(loaded.net(ids).logits, model(ids).logits)


class _Anything:
    """Stands for any class a pickle could name."""

    def __init__(self) -> None:
        self.value = 1


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_pt_holding_an_arbitrary_class_is_refused_in_one_line(tmp_path, capsys):
    _official_files(tmp_path)
    marker = tmp_path / "code-ran"
    for name, extra, global_name in [("class.pt", _Anything(), "_Anything"), ("code.pt", _RunsCode(str(marker)), "builtins.exec")]:
        state = torch.load(tmp_path / "hnet.pt", weights_only=True)
        state["backbone.residual_proj.weight"].extra = extra  # hidden in a tensor's attributes, as omegaconf values are
        torch.save(state, tmp_path / name)
        out = tmp_path / f"ck-{name}"
        code = main(["convert", "--config", str(tmp_path / "hnet.json"), "--weights", str(tmp_path / name), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "refusing to unpickle" in err and global_name in err and err.count("\n") == 1, err
        assert not out.exists()
    assert not marker.exists()


def test_checkpoint_config_written_before_rounding_loads_its_widths_as_written(tmp_path):
    """config.json files that predate `mlp_multiple_of` built d_intermediate as written (192 stays 192)."""
    from dnahnet.config import ModelConfig
    from dnahnet.io.checkpoint import load_model, save_model

    cfg = ModelConfig(arch_layout=["T1"], d_model=[32], d_intermediate=[96], mlp_multiple_of=1,
                      attn_cfg={"num_heads": 2, "rotary_emb_dim": 8, "window_size": -1})
    save_model(tmp_path / "old", HNetLM(cfg))
    path = tmp_path / "old" / "config.json"
    data = json.loads(path.read_text())
    assert data.pop("mlp_multiple_of") == 1
    path.write_text(json.dumps(data))
    model = load_model(tmp_path / "old")
    assert model.backbone.main_network.layers[0].mlp.fc2.weight.shape == (32, 96)
    # the same file given as an official config builds the official width, 128
    assert HNetLM(ModelConfig.from_json(path)).backbone.main_network.layers[0].mlp.fc2.weight.shape == (32, 128)
