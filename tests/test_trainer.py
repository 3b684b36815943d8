"""The training loop: schedules, the loss and its normalisation, global ratio loss, exact resume, refusals."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dnahnet.config import DataConfig, ModelConfig, TrainConfig, load_preset
from dnahnet.data.demo import demo_genome_path
from dnahnet.data.setup import accumulation_steps, build_data
from dnahnet.errors import DnahnetInputError
from dnahnet.io.checkpoint import load_model
from dnahnet.nn.hnet import HNetLM
from dnahnet.train import checkpoint as ckpt
from dnahnet.train.schedule import lr_factor, total_steps
from dnahnet.train.trainer import (
    Trainer,
    TrainingDiverged,
    pretrain,
    run_configs,
    weighted_ce,
)

N = ord("N")


def tiny_run(preset: str = "tiny", *, model: dict | None = None, **train) -> tuple[ModelConfig, TrainConfig, DataConfig]:
    """Configs of a short run of a tiny preset on the bundled demo genome, in fp32 whatever the CPU (auto
    autocasts to bf16 where the CPU has it natively; tests/test_bf16_cpu.py covers that default)."""
    train = {"steps": 6, "checkpoint_every": 3, "eval_every": 3, "log_every": 1, "precision": "fp32", **train}
    m, t, d = run_configs(preset, train=train, data={"eval_windows": 4})
    if model:
        m = ModelConfig.from_dict({**m.to_dict(), **model})
    return m, t, d


def make_trainer(m: ModelConfig, t: TrainConfig, d: DataConfig, out=None, *, dtype=torch.float32) -> Trainer:
    data, evals = build_data(d, t)
    torch.manual_seed(t.seed)
    return Trainer(HNetLM(m).to(dtype), t, d, data, evals, out_dir=out)


def params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ----- schedules ----------------------------------------------------------------------------------------
def test_cosine_warms_up_linearly_then_falls_to_min_at_the_last_step():
    f = [lr_factor(k, 106, schedule="cosine", warmup_steps=5, min_lr_ratio=0.1) for k in range(106)]
    assert f[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert f[5] == pytest.approx(1.0)
    assert f[55] == pytest.approx(0.55)  # half-way: (1 + min) / 2
    assert f[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[5:], f[6:]))


def test_wsd_is_flat_then_decays_linearly_over_the_last_fraction():
    f = [lr_factor(k, 100, schedule="wsd", warmup_steps=10, decay_fraction=0.2, min_lr_ratio=0.0) for k in range(100)]
    assert f[9] == pytest.approx(1.0) and f[0] == pytest.approx(0.1)
    assert f[10:80] == pytest.approx([1.0] * 70)
    assert f[80:] == pytest.approx([1 - (i + 1) / 20 for i in range(20)])


def test_budget_in_bases_rounds_up_to_whole_steps_and_must_be_given_once():
    assert total_steps(TrainConfig(tokens_per_step=1000, bases=10_001)) == 11
    with pytest.raises(DnahnetInputError, match="steps or bases"):
        total_steps(TrainConfig())
    with pytest.raises(DnahnetInputError, match="not both"):
        total_steps(TrainConfig(steps=3, bases=5))


def test_accumulation_is_derived_from_tokens_per_step_and_must_divide():
    assert accumulation_steps(8192, 256, 4, 2) == 4
    with pytest.raises(DnahnetInputError, match="multiple of seq_len 256 x micro_batch_size 4 x 3"):
        accumulation_steps(8192, 256, 4, 3)


# ----- the loss ------------------------------------------------------------------------------------------
def test_weighted_ce_skips_n_targets_and_divides_by_the_weight_sum():
    torch.manual_seed(0)
    ids = torch.randint(0, 4, (2, 9)).apply_(lambda b: b"ACGT"[b])
    ids[0, 3] = ids[1, 7] = N
    mask = torch.where(ids == N, 0.0, 1.0)
    mask[1, 2] = 0.5  # a soft-masked base at half weight
    logits = torch.randn(2, 9, 256, dtype=torch.float64)
    ce_sum, w_sum = weighted_ce(logits, ids, mask)
    expected, weight = 0.0, 0.0
    for b in range(2):
        for t in range(1, 9):
            w = mask[b, t].item()
            expected += w * -torch.log_softmax(logits[b, t - 1], -1)[ids[b, t]].item()
            weight += w
    assert w_sum.item() == weight == 13.5  # 16 targets, 2 of them N, one at half weight
    assert ce_sum.item() == pytest.approx(expected, rel=1e-12)


def test_eval_bits_per_base_is_the_weighted_ce_over_the_held_out_windows_in_bits():
    m, t, d = tiny_run()
    trainer = make_trainer(m, t, d)
    batch = {k: v.clone() for k, v in trainer.eval_batches[0].items()}
    batch["input_ids"][:, 100:120] = N  # an assembly gap: scored nowhere
    batch["loss_mask"][:, 100:120] = 0.0
    trainer.eval_batches = [batch]
    got = trainer.evaluate()
    with torch.no_grad():
        out = trainer.raw_model(batch["input_ids"])
    logp = torch.log_softmax(out.logits[:, :-1].double(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0]
    scored = batch["input_ids"][:, 1:] != N
    assert got["eval_bits_per_base"] == pytest.approx((-logp[scored]).mean().item() / math.log(2), rel=1e-6)
    b, _, n = out.routing[0].stats()
    assert got["eval_compression"] == [pytest.approx(n.item() / b.item())]
    assert got["eval_ratio_loss"] == [pytest.approx(out.ratio_losses[0].item(), rel=1e-6)]


def test_encoder_only_boundary_counts_match_the_full_forward():
    torch.manual_seed(0)
    model = HNetLM(ModelConfig.from_dict(load_preset("tiny-2stage")["model"]))
    ids = torch.tensor([list(b"ACGTTGCA" * 32), list(b"GATTACAC" * 32)])
    out = model(ids)
    counts = model.boundary_counts(ids)
    assert len(counts) == 2
    for (b, n), r in zip(counts, out.routing):
        rb, _, rn = r.stats()
        assert (b.item(), n.item()) == (rb.item(), rn.item())


@pytest.mark.parametrize("preset", ["tiny", "tiny-2stage"])
def test_accumulated_gradient_equals_the_global_formula_on_the_whole_batch(preset):
    """Two micro-batches, F and G global: the gradient is that of CE + w * ratio_loss over all windows at once."""
    m, t, d = tiny_run(preset, micro_batch_size=4, grad_clip=0.0, tokens_per_step=2048)
    trainer = make_trainer(m, t, d, dtype=torch.float64)
    assert trainer.accumulation == 2
    reference = HNetLM(m).double()
    reference.load_state_dict(trainer.raw_model.state_dict())
    captured = {}
    trainer.optimizer.step = lambda: captured.update(
        {n: p.grad.clone() for n, p in trainer.raw_model.named_parameters()})
    metrics = trainer.train_step()

    whole = [trainer.data.batch(0, i) for i in range(2)]
    ids = torch.cat([b["input_ids"] for b in whole])
    mask = torch.cat([b["loss_mask"] for b in whole])
    out = reference(ids)
    ce_sum, w_sum = weighted_ce(out.logits, ids, mask)
    loss = ce_sum / w_sum + out.ratio_loss  # HNetLM's ratio loss over one batch = the global formula
    loss.backward()
    assert metrics["loss"] == pytest.approx(loss.item(), rel=1e-6)  # logged sums are fp32
    assert metrics["ratio_loss"] == pytest.approx([r.item() for r in out.ratio_losses], rel=1e-6)
    for name, p in reference.named_parameters():
        torch.testing.assert_close(captured[name], p.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_parameter_groups_get_their_stage_lr_multipliers():
    m, t, d = tiny_run(model={"lr_multiplier": [2.0, 0.5]}, warmup_steps=4)
    trainer = make_trainer(m, t, d)
    metrics = trainer.train_step()
    assert metrics["lr"] == pytest.approx(t.lr * 0.25)
    seen = set()
    for group in trainer.optimizer.param_groups:
        expected = {0: 2.0, 1: 0.5}[group["stage"]]
        assert group["lr_multiplier"] == expected
        assert group["lr"] == pytest.approx(metrics["lr"] * expected)
        seen.add(group["stage"])
    assert seen == {0, 1}
    names = {n for g in trainer.optimizer.param_groups if g["weight_decay"] == 0 for n in g["names"]}
    assert "embeddings.weight" in names and "backbone.residual_proj.bias" in names


# ----- checkpoints and resume ---------------------------------------------------------------------------
def test_resume_continues_bit_for_bit(tmp_path):
    m, t, d = tiny_run()
    whole = pretrain(m, t, d, tmp_path / "whole")

    first = make_trainer(m, t, d, tmp_path / "split")
    first.train(stop_at=3)
    assert json.loads((tmp_path / "split" / "latest" / "train.json").read_text())["step"] == 3
    resumed = pretrain(m, t, d, tmp_path / "split", resume=True)

    assert resumed.step == whole.step == 6
    a, b = params(whole.raw_model), params(resumed.raw_model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    on_disk = ckpt.read_checkpoint(tmp_path / "split" / "latest").model_state
    assert all(torch.equal(on_disk[k], a[k]) for k in a)

    def lines(folder):
        rows = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("bases_per_s", "elapsed_s")} for r in rows]

    assert lines(tmp_path / "whole") == lines(tmp_path / "split")
    assert [r["step"] for r in lines(tmp_path / "split")] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "whole" / "best" / ckpt.COMPLETE).exists()


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    m, t, d = tiny_run(steps=2, checkpoint_every=2)
    pretrain(m, t, d, out)
    return out


def _damaged_copy(saved_run, tmp_path, damage: str):
    import shutil

    out = tmp_path / "damaged"
    shutil.copytree(saved_run, out)
    latest = out / "latest"
    if damage == "truncated weights":
        data = (latest / ckpt.WEIGHTS).read_bytes()
        (latest / ckpt.WEIGHTS).write_bytes(data[: len(data) // 2])
    elif damage == "no COMPLETE":
        (latest / ckpt.COMPLETE).unlink()
    elif damage == "garbage trainer.pt":
        (latest / ckpt.TRAINER).write_bytes(b"this is not a torch file" * 10)
    return out


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncated weights", "weights file is truncated or corrupted"),
        ("no COMPLETE", "not completely written"),
        ("garbage trainer.pt", "trainer state is truncated or corrupted"),
    ],
)
def test_damaged_checkpoint_is_refused_with_a_clear_message(saved_run, tmp_path, damage, message):
    out = _damaged_copy(saved_run, tmp_path, damage)
    with pytest.raises(DnahnetInputError, match=message) as err:
        ckpt.read_checkpoint(out / "latest")
    assert "\n" not in str(err.value)
    m, t, d = run_configs(resume_from=out / "latest", train={"steps": 4})
    with pytest.raises(DnahnetInputError, match=message):
        pretrain(m, t, d, out, resume=True)


def test_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(saved_run, tmp_path):
    m, t, d = tiny_run(steps=1)
    with pytest.raises(DnahnetInputError, match="already holds a training run"):
        pretrain(m, t, d, saved_run)
    with pytest.raises(DnahnetInputError, match="nothing to resume"):
        pretrain(m, t, d, tmp_path / "empty", resume=True)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    m, t, d = tiny_run()
    make_trainer(m, t, d, tmp_path).train(stop_at=3)
    trainer = make_trainer(m, t, d, tmp_path)
    trainer.resume(tmp_path / "latest")
    with torch.no_grad():
        trainer.raw_model.lm_head.weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"diverged at step 4: loss nan.*last good checkpoint is .*latest \(step 3\)"):
        trainer.train()
    assert json.loads((tmp_path / "latest" / "train.json").read_text())["step"] == 3
    model = load_model(tmp_path / "latest")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_bf16_autocast_training_step_is_finite(monkeypatch):
    """bf16 autocast is the CUDA default; CPU autocast runs the same casts (forced where the CPU emulates bf16)."""
    monkeypatch.setenv("DNAHNET_CPU_BF16", "1")
    m, t, d = tiny_run(precision="bf16")
    trainer = make_trainer(m, t, d)
    assert trainer.dtype == torch.bfloat16
    metrics = trainer.train_step()
    assert math.isfinite(metrics["loss"]) and 7.0 < metrics["bits_per_base"] < 8.5


def test_fp32_readout_of_a_bf16_run_scores_outside_the_autocast(monkeypatch):
    """The comparison pipelines read held-out bits in fp32 whatever the training precision."""
    monkeypatch.setenv("DNAHNET_CPU_BF16", "1")
    m, t, d = tiny_run(precision="bf16")
    trainer = make_trainer(m, t, d)
    trainer.train_step()
    batch = trainer.eval_batches[0]
    with torch.no_grad():
        out = trainer.raw_model.eval()(batch["input_ids"])
    trainer.raw_model.train()
    c, w = weighted_ce(out.logits, batch["input_ids"], batch["loss_mask"])
    trainer.eval_batches = [batch]
    fp32 = trainer.evaluate(fp32=True)["eval_bits_per_base"]
    assert fp32 == pytest.approx(float(c) / float(w) / math.log(2), rel=1e-6)
    assert trainer.evaluate()["eval_bits_per_base"] != pytest.approx(fp32, rel=1e-6)  # bf16 rounding shows
