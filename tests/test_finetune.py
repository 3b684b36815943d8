"""Fine-tuning: labelled inputs, metrics with intervals, probe and full fine-tune on a planted motif, runs that predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, matthews_corrcoef, roc_auc_score

import dnahnet
from dnahnet.config import model_config_from_preset
from dnahnet.errors import DnahnetInputError
from dnahnet.finetune import FullConfig, finetune
from dnahnet.finetune.data import read_labelled
from dnahnet.finetune.metrics import classification_table, evaluate
from dnahnet.io.checkpoint import save_model
from dnahnet.nn.hnet import HNetLM
from dnahnet_cli.main import main

MOTIF = "TATAAGCG"


def planted(n: int, length: int = 48, seed: int = 0) -> tuple[list[str], list[int]]:
    """Random ACGT sequences; every second one (label 1) carries MOTIF at a random place."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        s = rng.choice(list("ACGT"), size=length)
        if i % 2:
            p = rng.integers(0, length - len(MOTIF))
            s[p : p + len(MOTIF)] = list(MOTIF)
        seqs.append("".join(s))
        labels.append(i % 2)
    return seqs, labels


def write_table(path: Path, seqs, labels, sep: str = ",") -> Path:
    path.write_text(f"sequence{sep}label\n" + "".join(f"{s}{sep}{y}\n" for s, y in zip(seqs, labels)))
    return path


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune")
    torch.manual_seed(0)
    save_model(root / "ckpt", HNetLM(model_config_from_preset("tiny")))
    paths = {"root": root, "ckpt": root / "ckpt"}
    for name, n, seed in [("train", 384, 1), ("dev", 96, 2), ("test", 192, 3)]:
        paths[name] = write_table(root / f"{name}.csv", *planted(n, seed=seed))
    return paths


def read_preds(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    return [r[0] for r in rows], np.array([float(r[1]) for r in rows]), np.array([float(r[2]) for r in rows])


def check_run_predicts(run: Path, task: dict, tmp_path: Path) -> None:
    """`dnahnet predict` and `dnahnet.load(RUN).predict` reproduce the run's own test predictions and metrics."""
    meta = json.loads((run / "finetune.json").read_text())
    out = tmp_path / f"{run.name}-preds.tsv"
    assert main(["predict", "--checkpoint", str(run), "--table", str(task["test"]), "--out", str(out)]) == 0
    names, labels, pred = read_preds(out)
    _, _, saved = read_preds(run / "predictions_test.tsv")
    np.testing.assert_allclose(pred, saved, rtol=0, atol=1e-6)
    assert evaluate("classify", labels, pred, n_boot=0)["auroc"].value == pytest.approx(meta["metrics"]["test"]["auroc"]["value"], abs=1e-9)
    seqs = [line.split(",")[0] for line in task["test"].read_text().splitlines()[1:]]
    np.testing.assert_allclose(dnahnet.load(run, device="cpu").predict(seqs[:20]), pred[:20], rtol=0, atol=1e-6)


def test_metrics_match_scikit_learn_on_resamples():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300).astype(float)
    p = np.round(rng.random(300) * 0.5 + 0.3 * y, 2)  # many ties
    idx = rng.integers(0, 300, 300)
    weights = np.vstack([np.ones(300), np.bincount(idx, minlength=300)])
    table = classification_table(y, p, weights)
    for row, (yy, pp) in enumerate([(y, p), (y[idx], p[idx])]):
        assert table["auroc"][row] == pytest.approx(roc_auc_score(yy, pp), abs=1e-12)
        assert table["auprc"][row] == pytest.approx(average_precision_score(yy, pp), abs=1e-12)
        assert table["mcc"][row] == pytest.approx(matthews_corrcoef(yy, pp >= 0.5), abs=1e-12)
    m = evaluate("classify", y, p, n_boot=300)
    for metric in m.values():
        assert metric.low <= metric.value <= metric.high and metric.high - metric.low < 0.2
    r = evaluate("regress", y + p, p, n_boot=100)
    assert r["spearman"].low < r["spearman"].value < r["spearman"].high and r["r2"].value < 1


def test_labelled_inputs_in_every_format(tmp_path, write_fasta):
    from dnahnet.data.genome import Genome

    tsv = tmp_path / "t.tsv"
    tsv.write_text("name\tsequence\tlabel\nx\tacgtn\t1\ny\tGGCC\t0\n")
    s = read_labelled(tsv)
    assert s.names == ["x", "y"] and s.seqs[0].tobytes() == b"ACGTN" and list(s.labels) == [1, 0]
    fa = tmp_path / "l.fa"
    fa.write_text(">a label=1 some text\nACGT\nAC\n>b 0\nGGGG\n")
    s = read_labelled(fa)
    assert s.names == ["a", "b"] and s.seqs[0].tobytes() == b"ACGTAC" and list(s.labels) == [1, 0]
    genome = Genome(write_fasta({"chr1": "ACGTACGTAC" * 10}, "g.fa"), cache_dir=tmp_path)
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t0\t10\tr1\t2.5\nchr1\t5\t25\tr2\t-1\n")
    s = read_labelled(bed, "regress", genome=genome)
    assert s.names == ["r1", "r2"] and s.seqs[1].tobytes() == (b"ACGTACGTAC" * 3)[5:25] and list(s.labels) == [2.5, -1]


def test_probe_learns_a_planted_motif_and_its_run_predicts(task, tmp_path):
    run = tmp_path / "probe-run"
    meta = finetune(task["ckpt"], task["train"], task["dev"], run, test=task["test"], mode="probe", n_boot=200)
    test = meta["metrics"]["test"]
    assert test["auroc"]["value"] > 0.7 and test["auroc"]["low"] > 0.6  # random-init features still see the motif
    assert {"auroc", "auprc", "mcc", "accuracy"} <= set(test)
    assert (run / "config.json").exists() and (run / "head.safetensors").exists()
    assert not list(tmp_path.glob(".*partial*"))
    check_run_predicts(run, task, tmp_path)


@pytest.mark.slow
def test_full_finetune_learns_a_planted_motif_and_its_run_predicts(task, tmp_path):
    run = tmp_path / "full-run"
    cfg = FullConfig(epochs=8, eval_every=12, lr=3e-3, head_lr=1e-2, patience=3, seed=0)
    meta = finetune(task["ckpt"], task["train"], task["dev"], run, test=task["test"], mode="full", config=cfg, n_boot=200)
    assert meta["metrics"]["test"]["auroc"]["value"] > 0.9
    assert meta["fit"]["best_step"] > 0 and meta["fit"]["train_bases_per_s"] > 0
    check_run_predicts(run, task, tmp_path)


@pytest.mark.parametrize("content,words", [
    ("seq,label\nACGT,1\n", "no 'sequence' column"),
    ("sequence,y\nACGT,1\n", "no 'label' column"),
    ("sequence,label\nACGT,1\nACGT,yes\n", "row 2: label 'yes' is not binary"),
    ("sequence,label\nACGT,1\nACGT,2\n", "row 2: label '2' is not binary"),
    ("sequence,label\nACGT,0\nAC,0\n", "class 1 has no examples"),
    ("sequence,label\nACGT,1\nAC!T,0\n", "row 2, position 3: non-IUPAC character '!'"),
    ("", "empty file"),
])
def test_bad_training_tables_exit_2_with_one_line_and_no_run(task, tmp_path, capsys, content, words):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    run = tmp_path / "run"
    rc = main(["finetune", "--checkpoint", str(task["ckpt"]), "--train", str(bad), "--dev", str(task["dev"]), "--out", str(run)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err and str(bad) in err
    assert not run.exists() and not list(tmp_path.glob(".*partial*"))


def test_missing_dev_split_and_used_run_folder_are_refused(task, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["finetune", "--checkpoint", str(task["ckpt"]), "--train", str(task["train"]), "--out", str(run)]) == 2
    assert "dev split is required" in capsys.readouterr().err and not run.exists()
    run.mkdir()
    (run / "x").write_text("keep")
    assert main(["finetune", "--checkpoint", str(task["ckpt"]), "--train", str(task["train"]), "--dev", str(task["dev"]),
                 "--out", str(run)]) == 2
    assert "not empty" in capsys.readouterr().err and (run / "x").read_text() == "keep"
    with pytest.raises(DnahnetInputError, match="not a fine-tuned run"):
        dnahnet.load(task["ckpt"], device="cpu").predict(["ACGT"])


def test_kmer_features_count_kmers_without_n():
    from dnahnet_pipelines.gue import kmer_features

    x = kmer_features([np.frombuffer(b"ACGTNAC", np.uint8), np.frombuffer(b"A", np.uint8)], 2).toarray()
    index = {"AC": 1, "CG": 6, "GT": 11}  # A=0 C=1 G=2 T=3, first base most significant
    assert x.shape == (2, 16) and x[0, index["AC"]] == pytest.approx(0.5) and x[0, index["CG"]] == pytest.approx(0.25)
    assert x[0].sum() == pytest.approx(1.0) and x[1].sum() == 0


def test_gue_pipeline_on_one_task(task, tmp_path):
    from dnahnet_pipelines.gue import GueConfig, gue_dir, run_gue
    from shared_paths import SHARED_DATA

    if not (SHARED_DATA / "gue").is_dir():
        pytest.skip(f"GUE data not found at {SHARED_DATA / 'gue'} (benchmark data is read at run time, never committed)")
    cfg = GueConfig(checkpoints=[str(task["ckpt"])], data=gue_dir(SHARED_DATA / "gue"), out=tmp_path / "gue",
                    tasks=["prom_prom_core_tata"], modes=["probe"], max_train=200, kmax=3, n_boot=50)
    report = run_gue(cfg, command="test")
    results = json.loads((tmp_path / "gue" / "results.json").read_text())
    row = results["tasks"]["prom_prom_core_tata"]
    assert row["sizes"] == {"train": 200, "dev": 613, "test": 613} and 1 <= row["kmer"]["k"] <= 3
    assert row["kmer"]["test"]["auroc"]["value"] > 0.6  # k-mer frequencies see TATA boxes
    probe = row["runs"][f"{task['ckpt']}|probe"]["test_auroc"]
    assert 0 <= probe["low"] <= probe["value"] <= probe["high"] <= 1
    text = report.read_text()
    assert "| prom_prom_core_tata | Promoter TATA 70 bps |" in text and "| 0.778 | 0.795 | 0.783 | 0.810 | 0.796 |" in text
    run_gue(cfg, command="test")  # a rerun reuses the finished run folder instead of refusing it
    paired = json.loads((tmp_path / "gue" / "results.json").read_text())["paired"]
    assert [(p["a"], p["b"]) for p in paired] == [(f"{task['ckpt']}|probe", "k-mer")]  # one model: no H-Net/isotropic pair
    diff = paired[0]["per_task"]["prom_prom_core_tata"]
    assert diff["value"] == pytest.approx(probe["value"] - row["kmer"]["test"]["auroc"]["value"], abs=1e-9)
    assert "## Paired differences in test AUROC" in report.read_text()
    # --report-only: a checkpoint with no finished run is left out, nothing is trained
    other = tmp_path / "never-trained"
    only = GueConfig(**{**cfg.__dict__, "checkpoints": [str(task["ckpt"]), str(other)], "report_only": True})
    run_gue(only, command="test")
    runs = json.loads((tmp_path / "gue" / "results.json").read_text())["tasks"]["prom_prom_core_tata"]["runs"]
    assert list(runs) == [f"{task['ckpt']}|probe"]


def test_probe_regresses_gc_content_from_embeddings(task, tmp_path):
    rng = np.random.default_rng(5)

    def gc_set(n: int) -> tuple[list[str], list[float]]:
        gc = rng.uniform(0.2, 0.8, n)
        seqs = ["".join(rng.choice(list("ACGT"), 48, p=[(1 - g) / 2, g / 2, g / 2, (1 - g) / 2])) for g in gc]
        return seqs, [round(sum(c in "GC" for c in s) / len(s), 4) for s in seqs]

    paths = {name: write_table(tmp_path / f"{name}.tsv", *gc_set(n), sep="\t") for name, n in [("train", 200), ("dev", 60), ("test", 100)]}
    run = tmp_path / "gc-run"
    meta = finetune(task["ckpt"], paths["train"], paths["dev"], run, test=paths["test"], task="regress", mode="probe", n_boot=100)
    test = meta["metrics"]["test"]
    assert {"spearman", "pearson", "r2"} == set(test) and test["spearman"]["value"] > 0.7
    _, labels, saved = read_preds(run / "predictions_test.tsv")
    seqs = [line.split("\t")[0] for line in paths["test"].read_text().splitlines()[1:]]
    np.testing.assert_allclose(dnahnet.load(run, device="cpu").predict(seqs), saved, rtol=0, atol=1e-6)
    with pytest.raises(DnahnetInputError, match="row 1: label 'high' is not numeric for task regress"):
        read_labelled(write_table(tmp_path / "bad.csv", ["ACGT"], ["high"]), "regress")


def test_saved_predictions_round_trip_exactly(tmp_path):
    """Saturated probabilities stay distinct in predictions_*.tsv, so metrics from the file equal the run's."""
    from dnahnet.finetune.data import LabelledSet
    from dnahnet.finetune.run import _write_predictions, read_predictions

    pred = np.array([1 - 1e-10, 1 - 2e-10, 0.1 + 1e-12, 0.1, 3e-300])
    data = LabelledSet("t.csv", names=[f"s{i}" for i in range(5)], seqs=[np.zeros(1, np.uint8)] * 5,
                       labels=np.array([1.0, 0.0, 1.0, 0.0, np.nan]))
    _write_predictions(tmp_path / "p.tsv", data, pred)
    labels, back = read_predictions(tmp_path / "p.tsv")
    assert np.array_equal(back, pred) and np.array_equal(labels[:4], data.labels[:4]) and np.isnan(labels[4])
