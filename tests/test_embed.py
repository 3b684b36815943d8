"""Embeddings: which tensor each option returns, windows, chunk spans, N and padding in pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnahnet.alphabet import reverse_complement
from dnahnet.config import ModelConfig, model_config_from_preset
from dnahnet.errors import DnahnetInputError
from dnahnet.infer.model import DnaModel
from dnahnet.nn.hnet import HNetLM
from infer_fixtures import CLEAN, GAPPY, chr22, checkpoints, tiny, tiny2  # noqa: F401


def _sliding_transformer() -> DnaModel:
    """Two attention layers with a 16-position window: each output sees at most 32 positions back."""
    tiny_t = model_config_from_preset("tiny-transformer")
    cfg = ModelConfig(arch_layout=["T2"], d_model=[32], d_intermediate=[64], ssm_cfg=tiny_t.ssm_cfg,
                      attn_cfg={"num_heads": 2, "rotary_emb_dim": 8, "window_size": 16})
    torch.manual_seed(0)
    return DnaModel(HNetLM(cfg))


def test_final_is_the_tensor_the_lm_head_reads(tiny):
    seq = "ACGTTGCAAC" * 12
    view = tiny.embed([seq], pool="none")[0]
    logits = tiny.net.lm_head(torch.from_numpy(view)).detach().numpy()
    ids = torch.from_numpy(tiny.prepare(seq).astype(np.int64))[None]
    with torch.inference_mode():
        expected = tiny.net(ids).logits[0].numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    np.testing.assert_array_equal(view, tiny.embed([seq], layer="main", stage=0, pool="none")[0])


def test_windowed_embedding_equals_single_pass_where_it_fits(tiny2, chr22):
    seq = chr22(CLEAN[1], CLEAN[1] + 1500)
    single = tiny2.embed([seq], pool="none", window=None)[0]
    assert single.shape == (1500, 32)
    np.testing.assert_array_equal(tiny2.embed([seq], pool="none", window=1500, context=100)[0], single)
    windowed = tiny2.embed([seq], pool="none", window=512, context=256, batch_size=2)[0]
    # The first window is a prefix of the single pass (causal model): same values there.
    np.testing.assert_allclose(windowed[:512], single[:512], rtol=0, atol=2e-5)
    # Later windows start with 256 bases of warm-up instead of the whole past: close, not identical.
    assert np.abs(windowed[512:] - single[512:]).max() < 0.05


def test_windowed_embedding_is_exact_beyond_a_finite_reach(chr22):
    model = _sliding_transformer()
    seq = chr22(CLEAN[1], CLEAN[1] + 700)
    single = model.embed([seq], pool="none", window=None)[0]
    windowed = model.embed([seq], pool="none", window=128, context=64)[0]
    np.testing.assert_allclose(windowed, single, rtol=0, atol=2e-5)
    too_short = model.embed([seq], pool="none", window=128, context=8)[0]
    assert np.abs(too_short - single).max() > 1e-3  # less warm-up than the reach: values differ


def test_windowed_mean_is_the_mean_of_the_windowed_view(tiny, chr22):
    seq = chr22(GAPPY[1], GAPPY[1] + 3000)  # with an assembly gap
    arr = tiny.prepare(seq)
    assert (arr == ord("N")).any() and (arr != ord("N")).any()
    view = tiny.embed([seq], pool="none", window=1000, context=300)[0]
    mean = tiny.embed([seq], pool="mean", window=1000, context=300)[0]
    np.testing.assert_allclose(mean, view[arr != ord("N")].mean(0), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny", "tiny2"])
def test_chunk_spans_tile_the_sequence_and_match_boundaries(name, tiny, tiny2, chr22):
    model = {"tiny": tiny, "tiny2": tiny2}[name]
    seq = chr22(CLEAN[1], CLEAN[1] + 900)
    bounds = model.boundaries(seq)
    view0 = model.embed([seq], pool="none")[0]
    for k in range(1, model.n_routed + 1):
        for layer in ("main", "encoder"):
            if layer == "encoder" and k == model.n_routed:
                continue
            chunks = model.embed([seq], layer=layer, stage=k, pool="chunks", window=None)[0]
            np.testing.assert_array_equal(chunks.starts, bounds[k - 1].positions)
            assert chunks.starts[0] == 0 and chunks.ends[-1] == len(seq)
            np.testing.assert_array_equal(chunks.ends[:-1], chunks.starts[1:])
            # The per-base view repeats each chunk's vector over its span.
            view = model.embed([seq], layer=layer, stage=k, pool="none", window=None)[0]
            spans = np.repeat(np.arange(len(chunks.starts)), chunks.ends - chunks.starts)
            np.testing.assert_array_equal(view, chunks.vectors[spans])
    # Stage 0 + chunks: the mean of the per-base vectors over each first-router chunk.
    level0 = model.embed([seq], pool="chunks", window=None)[0]
    np.testing.assert_array_equal(level0.starts, bounds[0].positions)
    for i in (0, len(level0.starts) // 2, len(level0.starts) - 1):
        a, b = level0.starts[i], level0.ends[i]
        np.testing.assert_allclose(level0.vectors[i], view0[a:b].mean(0), rtol=0, atol=1e-5)


def test_windowed_chunks_tile_the_sequence(tiny2, chr22):
    seq = chr22(CLEAN[1], CLEAN[1] + 2000)
    for stage in (0, 1, 2):
        layer = "main" if stage else "final"
        chunks = tiny2.embed([seq], layer=layer, stage=stage, pool="chunks", window=600, context=300)[0]
        assert chunks.starts[0] == 0 and chunks.ends[-1] == len(seq)
        np.testing.assert_array_equal(chunks.ends[:-1], chunks.starts[1:])
        assert np.all(chunks.ends > chunks.starts) and len(chunks.vectors) == len(chunks.starts)


def test_pooling_ignores_n_and_padding(tiny2, chr22):
    clean = chr22(CLEAN[1], CLEAN[1] + 300)
    gappy = clean[:100] + "N" * 80 + clean[180:]
    longer = chr22(CLEAN[1] + 5000, CLEAN[1] + 5800)
    alone = tiny2.embed([gappy], pool="mean", window=None)[0]
    batched = tiny2.embed([longer, gappy, clean[:50]], pool="mean", window=None, batch_size=3)[1]
    np.testing.assert_allclose(batched, alone, rtol=0, atol=2e-5)  # padded to 800 in the batch: same vector
    view = tiny2.embed([gappy], pool="none", window=None)[0]
    is_base = np.frombuffer(gappy.encode(), np.uint8) != ord("N")
    np.testing.assert_allclose(alone, view[is_base].mean(0), rtol=0, atol=1e-5)
    assert not np.allclose(alone, view.mean(0), atol=1e-3)  # the N rows would have changed it
    chunks = tiny2.embed([gappy], pool="chunks", window=None)[0]
    mixed = 0
    for start, end, vector in zip(chunks.starts, chunks.ends, chunks.vectors):
        keep = is_base[start:end]
        mixed += bool(keep.any() and not keep.all())
        if keep.any():  # a chunk's mean is over its ACGT bases only
            np.testing.assert_allclose(vector, view[start:end][keep].mean(0), rtol=0, atol=1e-5)
        else:
            assert np.isnan(vector).all()
    assert mixed >= 1  # some chunk covers both N and bases, so the N exclusion was exercised
    all_n = tiny2.embed(["NNNNNNNN", "ACGT"], pool="mean")
    assert np.isnan(all_n[0]).all() and np.isfinite(all_n[1]).all()
    assert np.isnan(tiny2.embed(["NNNNNNNN"], pool="chunks")[0].vectors).all()  # an all-N chunk has no mean


def test_rc_embedding_is_strand_symmetric(tiny, chr22):
    seq = chr22(CLEAN[1], CLEAN[1] + 400)
    a = tiny.embed([seq], pool="none", rc=True, window=None)[0]
    b = tiny.embed([reverse_complement(seq)], pool="none", rc=True, window=None)[0][::-1]
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_embedding_options_are_checked(tiny, checkpoints):
    from dnahnet.infer.model import load

    iso = load(checkpoints["iso"], device="cpu")
    for model, kwargs, words in [
        (tiny, {"layer": "hidden"}, "layer must be one of"),
        (tiny, {"pool": "max"}, "pool must be one of"),
        (tiny, {"layer": "final", "stage": 1}, "stage 0"),
        (tiny, {"layer": "encoder", "stage": 1}, "0..0"),
        (tiny, {"layer": "main", "stage": 2}, "0..1"),
        (tiny, {"pool": "chunks", "rc": True}, "rc averaging"),
        (iso, {"pool": "chunks"}, "isotropic"),
        (iso, {"layer": "encoder"}, "no encoder"),
    ]:
        with pytest.raises(DnahnetInputError, match=words):
            model.embed(["ACGT"], **kwargs)
    with pytest.raises(DnahnetInputError, match="position 3"):
        tiny.embed(["ACZT"])


def test_embed_command_writes_one_row_per_record_with_names(checkpoints, tiny, tmp_path, write_fasta, capsys):
    from dnahnet.io.embeddings import read_embeddings
    from dnahnet_cli.main import main

    seqs = {"first": "ACGTTGCAAC" * 9, "second": "GGGCCNNNATAT" * 5}
    fasta = write_fasta(seqs, "e.fa")
    base = ["embed", "--checkpoint", str(checkpoints["tiny"]), "--fasta", str(fasta)]
    assert main(base + ["--out", str(tmp_path / "m.npz")]) == 0
    names, arrays, meta = read_embeddings(tmp_path / "m.npz")
    assert names == ["first", "second"] and meta["pool"] == "mean"
    np.testing.assert_allclose(arrays["embeddings"], tiny.embed(list(seqs.values())), rtol=0, atol=1e-6)
    assert main(base + ["--pool", "chunks", "--out", str(tmp_path / "c.safetensors")]) == 0
    names, arrays, meta = read_embeddings(tmp_path / "c.safetensors")
    chunks = tiny.embed(list(seqs.values()), pool="chunks")
    assert names == ["first", "second"] and list(arrays["offsets"]) == [0, len(chunks[0].starts), len(chunks[0].starts) + len(chunks[1].starts)]
    np.testing.assert_array_equal(arrays["starts"], np.concatenate([c.starts for c in chunks]))
    table = tmp_path / "t.csv"
    table.write_text("name,sequence\nx,ACGTAC\n")
    assert main(["embed", "--checkpoint", str(checkpoints["tiny"]), "--table", str(table), "--pool", "none",
                 "--out", str(tmp_path / "n.npz")]) == 0
    names, arrays, _ = read_embeddings(tmp_path / "n.npz")
    assert names == ["x"] and arrays["embeddings"].shape == (6, 32) and list(arrays["offsets"]) == [0, 6]
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "e.txt")]) == 2
    assert "must end in .safetensors or .npz" in capsys.readouterr().err and not (tmp_path / "e.txt").exists()
