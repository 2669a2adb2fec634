"""``supcon.use.ood.run_ood`` on tiny checkpoints of every kind: which scores each kind gets, the splits
scored, OOD images adapted to the encoder, the files written, and what is refused."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import supcon
from supcon.checkpoint import CheckpointError
from supcon.config import ConfigError
from supcon.use import export_checkpoint, run_ood, write_ood
from supcon.use.ood import OOD_CSV, OOD_JSON, OOD_SCORES_NPZ, ood_rows, parse_scores, read_ood
from supcon.use.ood_scoring import OOD_SCORES, REPRESENTATION_SCORES


@pytest.fixture(scope="module")
def ce_result(trained):
    """The CE checkpoint (4 classes of 8x8 gray) against scikit-learn's digits, k = 5."""
    return run_ood(trained["ce"], "digits", k=5, device="cpu")


def test_classifier_checkpoint_gets_every_score(ce_result, tiny_npz):
    s = ce_result.summary
    assert s["scores"] == list(OOD_SCORES) and s["notes"] == []
    assert (s["in_dataset"], s["in_bank_split"], s["in_split"]) == (f"npz:{tiny_npz}", "train", "test")
    assert (s["in_train_count"], s["in_count"], s["ood_split"], s["ood_count"]) == (64, 32, "test", 360)
    assert s["kind"] == "ce" and s["label"] == "ce" and s["positive"] == "in-distribution"
    assert 0 <= s["in_test_accuracy"] <= 100
    for name, metrics in s["metrics"].items():
        assert all(0 <= metrics[m] <= 1 for m in ("auroc", "aupr_in", "aupr_out", "fpr95")), name
        assert ce_result.in_scores[name].shape == (32,) and ce_result.ood_scores[name].shape == (360,)
        assert metrics["in_mean"] == pytest.approx(ce_result.in_scores[name].mean())


@pytest.mark.parametrize("kind, label", [("linear", "supcon (linear probe)"), ("finetune", "supcon (fine-tune)")])
def test_linear_and_finetune(trained, kind, label):
    s = run_ood(trained[kind], "digits", k=5, device="cpu", scores=["knn", "energy"]).summary
    assert s["label"] == label and s["scores"] == ["knn", "energy"] and list(s["metrics"]) == ["knn", "energy"]


def test_linear_probe_shares_the_pretrain_representation(trained):
    probe = run_ood(trained["linear"], "digits", k=5, device="cpu", scores=list(REPRESENTATION_SCORES))
    encoder = run_ood(trained["pretrain"], "digits", k=5, device="cpu")
    for name in REPRESENTATION_SCORES:
        assert np.array_equal(probe.in_scores[name], encoder.in_scores[name])
        assert np.array_equal(probe.ood_scores[name], encoder.ood_scores[name])


def test_pretrain_checkpoint_skips_the_classifier_scores(trained):
    s = run_ood(trained["pretrain"], "digits", k=5, device="cpu").summary
    assert s["scores"] == list(REPRESENTATION_SCORES) and s["in_test_accuracy"] is None
    assert len(s["notes"]) == 1 and "msp and energy skipped" in s["notes"][0] and "supcon linear" in s["notes"][0]
    with pytest.raises(ConfigError, match=r"--scores msp: .* is a pretrain checkpoint .*supcon linear --checkpoint"):
        run_ood(trained["pretrain"], "digits", scores=["cosine", "msp"], k=5, device="cpu")


def test_same_images_on_both_sides_is_chance(trained, tiny_npz):
    result = run_ood(trained["ce"], f"npz:{tiny_npz}", k=5, device="cpu")
    for name, metrics in result.metrics.items():
        assert metrics["auroc"] == 0.5, name
        assert np.array_equal(result.in_scores[name], result.ood_scores[name])


def test_rgb_folder_of_other_size_is_adapted(trained, png_folder):
    # 12x16 RGB PNGs -> the encoder's 8x8 gray
    result = run_ood(trained["ce"], f"folder:{png_folder}", ood_split="all", k=5, device="cpu")
    assert result.summary["ood_count"] == 20 and result.summary["ood_split"] == "all"
    assert "resized to 8" in result.summary["adaptation"] and "1 channel" in result.summary["adaptation"]


def test_other_in_dataset_is_noted(trained):
    s = run_ood(trained["pretrain"], "digits", "digits", k=5, device="cpu").summary
    assert s["in_dataset"] == "digits" and s["in_train_count"] == 1437
    assert any("not the one the checkpoint was trained on" in note for note in s["notes"])
    assert all(m["auroc"] == 0.5 for m in s["metrics"].values())


def test_deterministic(trained):
    a = run_ood(trained["linear"], "digits", k=5, device="cpu")
    b = run_ood(trained["linear"], "digits", k=5, device="cpu")
    assert a.summary == b.summary


def test_files_and_tables(ce_result, tmp_path):
    out = write_ood(ce_result, tmp_path / "ood")
    assert read_ood(out) == ce_result.summary
    rows = list(csv.DictReader((out / OOD_CSV).open(newline="")))
    assert [r["score"] for r in rows] == list(OOD_SCORES)
    assert float(rows[0]["auroc"]) == pytest.approx(ce_result.metrics["cosine"]["auroc"], abs=1e-6)
    with np.load(out / OOD_SCORES_NPZ, allow_pickle=False) as z:
        assert np.array_equal(z["ood_energy"], ce_result.ood_scores["energy"]) and z["in_msp"].shape == (32,)
    header, table = ood_rows(ce_result.summary)
    assert header[0] == "score" and len(table) == 5
    assert table[0][1] == round(100 * ce_result.metrics["cosine"]["auroc"], 2)
    header, table = ood_rows([ce_result.summary, ce_result.summary])
    assert header[:3] == ["in -> OOD", "model", "score"] and len(table) == 10 and table[0][0].endswith("-> digits")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        write_ood(ce_result, tmp_path / "file")
    with pytest.raises(ConfigError, match="holds no readable ood.json"):
        read_ood(tmp_path)


def test_wrong_kind_of_input(trained, tmp_path):
    with pytest.raises(CheckpointError, match=r"is a run folder: pass its checkpoint, .*checkpoint\.pt"):
        run_ood(trained["ce"].parent, "digits")
    export_checkpoint(trained["linear"], tmp_path / "export")
    with pytest.raises(CheckpointError, match="is a `supcon export` folder: .*pass the checkpoint.pt"):
        run_ood(tmp_path / "export", "digits")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint.pt"):
        run_ood(tmp_path, "digits")
    other = tmp_path / "other.pt"
    torch.save({"format": "supcon", "version": 1, "kind": "sweep"}, other)
    with pytest.raises(CheckpointError, match=r"'sweep' checkpoint, which holds no encoder representation: "
                                              r"`supcon ood` needs a pretrain, CE, linear-probe or fine-tune"):
        run_ood(other, "digits")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable supcon checkpoint"):
        run_ood(tmp_path / "junk.pt", "digits")


@pytest.mark.parametrize("kwargs, match", [
    ({"k": 65}, r"--k 65 exceeds the 64 images of the in-distribution train split"),
    ({"k": 0}, "--k must be a positive int"),
    ({"ood_split": "val"}, "--ood-split must be one of test, train, all"),
    ({"scores": ["odin"]}, "unknown OOD score"),
])
def test_bad_arguments(trained, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run_ood(trained["ce"], "digits", device="cpu", **kwargs)


def test_parse_scores():
    assert parse_scores("all") is None and parse_scores(None) is None
    assert parse_scores("knn, msp") == ["knn", "msp"]
    for bad in ("knn,knn", "odin", ""):
        with pytest.raises(ConfigError, match="--scores must be 'all' or distinct"):
            parse_scores(bad)


def test_public_api():
    assert supcon.run_ood is run_ood
    from supcon.use import fit_bank, ood_metrics, ood_scores  # noqa: F401
