"""Official H-Net checkpoints (config JSON + state dict) import into dnahnet checkpoint folders."""

import json

import torch

from dnahnet.config import model_config_from_preset
from dnahnet.nn.hnet import HNetLM
from dnahnet_cli.main import main


def _official_files(tmp_path):
    cfg = model_config_from_preset("tiny-2stage")
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
