"""``supcon.use.embed``: representations of a dataset split under a checkpoint's encoder, to npz or csv."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import torch

from supcon.augment import Normalize
from supcon.checkpoint import (CheckpointError, encoder_from_checkpoint, load_checkpoint, load_classifier,
                               load_supcon_model)
from supcon.config import ConfigError
from supcon.data import load_dataset
from supcon.metrics import extract_features
from supcon.use.embed import embed_dataset, write_embeddings


def _reference_features(checkpoint, images):
    encoder, state = encoder_from_checkpoint(checkpoint)
    return extract_features(encoder, images, Normalize(**state["normalization"]))


def test_embed_matches_the_checkpoint_encoder_and_reads_back_without_pickle(trained, tiny_npz, tmp_path):
    spec = f"npz:{tiny_npz}"
    emb = embed_dataset(trained["pretrain"], spec, "test", device="cpu", chunk=10)
    test = load_dataset(spec, "test")
    torch.testing.assert_close(emb.features, _reference_features(trained["pretrain"], test.images), atol=1e-6, rtol=0)
    assert emb.splits == ["test"] * len(test) and emb.paths is None and emb.projections is None
    out = write_embeddings(emb, tmp_path / "e.npz")
    with np.load(out, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    assert set(arrays) == {"features", "labels", "split", "classes", "checkpoint"}
    assert arrays["features"].dtype == np.float32 and arrays["features"].shape == tuple(emb.features.shape)
    np.testing.assert_array_equal(arrays["labels"], test.labels.numpy())
    assert arrays["classes"].tolist() == test.classes and str(arrays["checkpoint"]) == str(trained["pretrain"])


def test_all_splits_with_projection(trained, tiny_npz):
    emb = embed_dataset(trained["pretrain"], f"npz:{tiny_npz}", "all", projection=True, device="cpu")
    assert len(emb) == 96 and emb.splits == ["train"] * 64 + ["test"] * 32
    model, _ = load_supcon_model(trained["pretrain"])
    with torch.no_grad():
        torch.testing.assert_close(emb.projections, model.head(emb.features), atol=1e-6, rtol=0)
    torch.testing.assert_close(emb.projections.norm(dim=1), torch.ones(96), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["linear", "finetune", "ce"])
def test_a_classifier_checkpoint_embeds_with_its_encoder(kind, trained, tiny_npz):
    emb = embed_dataset(trained[kind], f"npz:{tiny_npz}", "test", device="cpu")
    images = load_dataset(f"npz:{tiny_npz}", "test").images
    classifier = load_classifier(trained[kind])
    expected = extract_features(classifier.encoder, images, classifier.normalize)
    torch.testing.assert_close(emb.features, expected, atol=1e-6, rtol=0)
    if kind == "linear":  # a probe's frozen encoder is the pretrain checkpoint's
        torch.testing.assert_close(emb.features, _reference_features(trained["pretrain"], images), atol=1e-6, rtol=0)


def test_a_folder_keeps_paths_and_is_fitted_to_the_encoder(trained, png_folder, tmp_path, caplog):
    """RGB 12x16 PNGs into an encoder trained on 8x8 gray: converted and resized, with their file paths."""
    with caplog.at_level(logging.INFO, logger="supcon.use.embed"):
        emb = embed_dataset(trained["linear"], f"folder:{png_folder}", "all", device="cpu", chunk=4)
    assert len(emb) == 20 and emb.features.shape == (20, 128)
    assert sorted(emb.paths) == sorted(f"class{k}/{j}.png" for k in range(4) for j in range(5))
    assert [emb.classes[label] for label in emb.labels.tolist()] == [p.split("/")[0] for p in emb.paths]
    assert sum("embed: " in r.getMessage() for r in caplog.records) >= 3
    out = write_embeddings(emb, tmp_path / "e.csv")
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["path"] for r in rows] == emb.paths and list(rows[0])[:4] == ["split", "path", "label", "class"]
    np.testing.assert_allclose([[float(r[f"f{d}"]) for d in range(128)] for r in rows], emb.features.numpy(),
                               rtol=1e-6, atol=1e-7)
    with np.load(write_embeddings(emb, tmp_path / "e.npz"), allow_pickle=False) as z:
        assert z["paths"].tolist() == emb.paths


def test_projection_of_a_checkpoint_without_a_head_is_refused(trained, tiny_npz):
    with pytest.raises(CheckpointError, match="'ce' checkpoint: it has no projection head"):
        embed_dataset(trained["ce"], f"npz:{tiny_npz}", projection=True)
    with pytest.raises(CheckpointError, match="fine-tuned checkpoint"):
        embed_dataset(trained["finetune"], f"npz:{tiny_npz}", projection=True)


def test_bad_split_and_suffix(trained, tiny_npz, tmp_path):
    with pytest.raises(ConfigError, match="split must be one of train, test, all"):
        embed_dataset(trained["pretrain"], f"npz:{tiny_npz}", "val")
    emb = embed_dataset(trained["pretrain"], f"npz:{tiny_npz}", device="cpu")
    with pytest.raises(ConfigError, match="suffix must be one of .npz, .csv"):
        write_embeddings(emb, tmp_path / "e.parquet")
    assert load_checkpoint(trained["pretrain"])["kind"] == "pretrain"
