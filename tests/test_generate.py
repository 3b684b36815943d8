"""Generation through the incremental caches agrees with the full forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnahnet.errors import DnahnetInputError
from dnahnet.infer.model import load
from infer_fixtures import CLEAN, chr22, checkpoints, tiny, tiny2  # noqa: F401

ACGT = torch.tensor(list(b"ACGT"))


def forward_logits(model, seq: str) -> torch.Tensor:
    with torch.no_grad():
        return model.net(torch.tensor([list(seq.encode())])).logits[0]


@pytest.mark.parametrize("which", ["tiny", "tiny2"])
def test_greedy_generation_equals_argmax_of_the_full_forward_pass(which, request, chr22):
    model = request.getfixturevalue(which)
    prompt = chr22(CLEAN[1], CLEAN[1] + 60).upper()
    seq = model.generate(prompt, 30, temperature=0)
    assert seq.startswith(prompt) and len(seq) == 90
    logits = forward_logits(model, seq)
    for t in range(len(prompt), len(seq)):
        assert chr(int(ACGT[logits[t - 1, ACGT].argmax()])) == seq[t], f"position {t}"


def test_sampling_is_seeded_and_stays_in_the_alphabet(tiny):
    a = tiny.generate("ACGT", 30, temperature=1.0, seed=7)
    assert a == tiny.generate("ACGT", 30, temperature=1.0, seed=7)
    assert a != tiny.generate("ACGT", 30, temperature=1.0, seed=8)
    assert set(a) <= set("ACGT")
    assert tiny.generate("ACGT", 12, top_k=1, seed=3) == tiny.generate("ACGT", 12, temperature=0)
    raw = tiny.generate("AC", 12, alphabet=None, seed=1)
    assert len(raw) == 14 and set(raw) - set("ACGT")  # a random byte model emits other bytes


def test_empty_prompt_starts_from_one_random_base(tiny):
    seq = tiny.generate("", 10, temperature=0, seed=5)
    assert len(seq) == 10 and seq[0] in "ACGT"
    assert tiny.generate("", 0) == ""


def test_generation_boundaries_match_the_forward_pass(tiny2, chr22):
    prompt = chr22(CLEAN[1], CLEAN[1] + 40).upper()
    seq, stages = tiny2.generate(prompt, 30, temperature=0.8, seed=2, return_boundaries=True)
    reference = tiny2.boundaries(seq)
    assert len(stages) == len(reference) == 2
    for got, ref in zip(stages, reference):
        assert np.array_equal(got.positions, ref.positions)
        assert np.array_equal(got.p_positions, ref.p_positions)
        np.testing.assert_allclose(got.p_values, ref.p_values, atol=1e-4)


def test_bad_generation_arguments_are_input_errors(tiny, checkpoints):
    with pytest.raises(DnahnetInputError):
        tiny.generate("ACGT", 5, temperature=-1)
    with pytest.raises(DnahnetInputError, match="record prompt"):
        tiny.generate("ACGT!", 5)
    iso = load(checkpoints["iso"], device="cpu")
    assert len(iso.generate("ACGT", 5, seed=0)) == 9
    with pytest.raises(DnahnetInputError, match="no routing stages"):
        iso.generate("ACGT", 5, return_boundaries=True)
