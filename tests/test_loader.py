"""Batches: masks, exact reverse complement, and determinism per (seed, step, rank, world size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnahnet.data.intervals import WindowSampler, fraction_splits
from dnahnet.data.loader import WindowBatches, make_eval_batches
from dnahnet.data.text import ByteCorpus, text_splits
from dnahnet.errors import DnahnetInputError

COMPLEMENT = {ord(a): ord(b) for a, b in zip("ACGTN", "TGCAN")}


@pytest.fixture(scope="module")
def splits(demo_genome):
    return fraction_splits(demo_genome, 0.05, 0.05)


@pytest.fixture(scope="module")
def sampler(splits):
    # a generous N limit so that windows do contain N
    return WindowSampler(splits["train"], 256, max_n_fraction=0.5, seed=42)


def test_batch_keys_shapes_and_masks(sampler, demo_genome):
    stream = WindowBatches(sampler, 16, rc_prob=0.0, softmask_weight=0.25)
    batch = stream.batch(0)
    assert set(batch) == {"input_ids", "loss_mask", "softmask"}
    assert batch["input_ids"].shape == batch["loss_mask"].shape == batch["softmask"].shape == (16, 256)
    assert (batch["input_ids"].dtype, batch["loss_mask"].dtype, batch["softmask"].dtype) == (
        torch.int64, torch.float32, torch.bool)
    ids, mask, soft = batch["input_ids"].numpy(), batch["loss_mask"].numpy(), batch["softmask"].numpy()
    assert set(np.unique(ids)) <= set(b"ACGTN")
    assert (mask[ids == ord("N")] == 0).all()
    assert (mask[(ids != ord("N")) & soft] == 0.25).all()
    assert (mask[(ids != ord("N")) & ~soft] == 1).all()
    assert (ids == ord("N")).any() and soft.any()  # the real slice has gaps and repeats
    for row, (w, rc) in enumerate(stream.windows(0)):
        raw = demo_genome.fetch(*w)
        assert bytes(ids[row].astype(np.uint8)) == raw.upper().translate(bytes.maketrans(b"RYSWKMBDHV", b"N" * 10))
        assert soft[row].tolist() == [c.islower() for c in raw.decode()]


def test_reverse_complement_is_exact(sampler):
    fwd = WindowBatches(sampler, 8, rc_prob=0.0).batch(3)
    rev = WindowBatches(sampler, 8, rc_prob=1.0).batch(3)
    for f, r in zip(fwd["input_ids"].tolist(), rev["input_ids"].tolist()):
        assert r == [COMPLEMENT[b] for b in reversed(f)]
    assert torch.equal(rev["softmask"], fwd["softmask"].flip(1))
    assert torch.equal(rev["loss_mask"], fwd["loss_mask"].flip(1))


def test_rc_coin_is_fair_and_does_not_move_windows(sampler):
    half = WindowBatches(sampler, 64, rc_prob=0.5)
    none = WindowBatches(sampler, 64, rc_prob=0.0)
    flips = [rc for k in range(10) for _, rc in half.windows(k)]
    assert 0.4 < np.mean(flips) < 0.6
    assert [w for w, _ in half.windows(7)] == [w for w, _ in none.windows(7)]


def test_step_k_is_reproduced_by_a_fresh_stream_and_by_resuming(sampler):
    a = WindowBatches(sampler, 8)
    b = WindowBatches(sampler, 8)
    assert torch.equal(a.batch(17)["input_ids"], b.batch(17)["input_ids"])
    assert not torch.equal(a.batch(17)["input_ids"], a.batch(18)["input_ids"])
    resumed = WindowBatches(sampler, 8, start_step=5, steps=3)
    got = [x["input_ids"] for x in resumed]
    assert len(got) == 3 and all(torch.equal(g, a.batch(5 + i)["input_ids"]) for i, g in enumerate(got))


def test_two_ranks_see_the_global_batch_of_one_rank(sampler):
    one = WindowBatches(sampler, 8)
    ranks = [WindowBatches(sampler, 8, rank=r, world_size=2) for r in range(2)]
    micro = [WindowBatches(sampler, 8, micro_batch_size=2, rank=r, world_size=2) for r in range(2)]
    assert micro[0].accumulation == 2
    for step in (0, 1, 9):
        whole = one.batch(step)
        for key in whole:
            assert torch.equal(whole[key], torch.cat([r.batch(step)[key] for r in ranks]))
            assert torch.equal(whole[key], torch.cat([m.batch(step, i)[key] for m in micro for i in range(2)]))


def test_dataloader_workers_keep_step_order(sampler):
    stream = WindowBatches(sampler, 4, micro_batch_size=2, steps=3)
    got = [b["input_ids"] for b in stream.dataloader(num_workers=2)]
    expected = [stream.batch(k, m)["input_ids"] for k in range(3) for m in range(2)]
    assert len(got) == 6 and all(torch.equal(g, e) for g, e in zip(got, expected))


def test_stream_state_roundtrip_and_mismatch(sampler):
    stream = WindowBatches(sampler, 8)
    state = stream.state_dict(next_step=12)
    resumed = WindowBatches(sampler, 8)
    resumed.load_state_dict(state)
    assert resumed.start_step == 12
    assert torch.equal(next(iter(resumed))["input_ids"], stream.batch(12)["input_ids"])
    with pytest.raises(DnahnetInputError, match="global batch"):
        WindowBatches(sampler, 16).load_state_dict(state)


def test_batch_size_must_split_over_ranks_and_micro_batches(sampler):
    with pytest.raises(DnahnetInputError, match="multiple of the world size"):
        WindowBatches(sampler, 7, world_size=2)
    with pytest.raises(DnahnetInputError, match="micro_batch_size 3"):
        WindowBatches(sampler, 8, micro_batch_size=3)


def test_eval_batches_are_fixed_forward_strand_windows(splits, demo_genome):
    batches = make_eval_batches(splits["valid"], 10, 512, batch_size=4, seed=0)
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 2]
    again = make_eval_batches(splits["valid"], 10, 512, batch_size=4, seed=0)
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again))
    (iv,) = splits["valid"].intervals
    ids = batches[0]["input_ids"][0].numpy().astype(np.uint8)
    assert ids.tobytes() in demo_genome.fetch(*iv).upper()


def test_text_mode_scores_every_byte_and_never_reverse_complements(tmp_path):
    path = tmp_path / "book.txt"
    path.write_bytes(b"It was the best of times, it was the worst of times. " * 200)
    sampler = WindowSampler(text_splits(ByteCorpus(path), 0.1, 0.1)["train"], 64, seed=0)
    batch = WindowBatches(sampler, 4, rc_prob=1.0).batch(0)
    assert (batch["loss_mask"] == 1).all() and not batch["softmask"].any()
    data = path.read_bytes()
    for row in batch["input_ids"]:
        assert bytes(row.numpy().astype(np.uint8)) in data
