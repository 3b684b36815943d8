"""bench/ssd_chunks.py times each chunk on the form its shape selects and pairs it with the picked chunk."""

import dnahnet.nn.ssd as ssd
from bench.ssd_chunks import report, time_chunks


def test_chunks_are_timed_exactly_and_paired_with_the_picked_one(monkeypatch):
    seen = []
    original = ssd._per_head_scan
    monkeypatch.setattr(ssd, "_per_head_scan",
                        lambda x, a, B, C, q, *rest: seen.append(q) or original(x, a, B, C, q, *rest))
    monkeypatch.setattr(ssd, "CPU_CHUNK_SIZES", {"factored": 16, "per_head": 8})
    r = time_chunks((1, 64, 2, 4, 4, 2), [8, 16], repeats=2)
    assert r["form"] == "per_head" and r["picked_chunk"] == 8
    assert set(seen) == {8, 16}  # the cap was lifted while timing: each chunk ran as given
    assert ssd.CPU_CHUNK_SIZES == {"factored": 16, "per_head": 8}  # and restored
    rows = {row["chunk"]: row for row in r["rows"]}
    assert rows[16]["time_vs_picked"]["pairs"] == 2 and rows[8]["median_ms"] > 0
    text = report({"command": "x", "machine": "m", "repeats": 2, "shapes": [r]})
    assert "| 8 (picked) |" in text and "| (1, 64, 2, 4, 4, 2) | per_head | 16 |" in text


def test_a_preset_runs_capped_and_uncapped_with_the_same_logits(monkeypatch):
    from bench.ssd_chunks import time_model

    monkeypatch.setattr(ssd, "CPU_CHUNK_SIZES", {"factored": 8, "per_head": 4})
    m = time_model("tiny", 200, repeats=2)
    assert m["max_abs_logit_diff"] < 1e-4 and m["speedup"]["pairs"] == 2
    assert ssd.CPU_CHUNK_SIZES == {"factored": 8, "per_head": 4}
    text = report({"command": "x", "machine": "m", "repeats": 2, "shapes": [], "models": [m]})
    assert "| tiny |" in text
