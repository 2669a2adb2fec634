"""Using a trained encoder: embed a dataset, predict image files, export to a folder and load it back.

* :func:`embed_dataset` / :func:`write_embeddings` (``supcon embed``): representations (and projections)
  of every image of a dataset split, to ``.npz`` or ``.csv``;
* :func:`predict_images` / :func:`write_predictions` (``supcon predict``): a classifier's top classes
  for image files, unreadable files as rows with an error;
* :func:`export_checkpoint` (``supcon export``), :func:`load_encoder`, :func:`load_exported_classifier`:
  safetensors + JSON, loaded with no pickle and no training code;
* :func:`run_ood` / :func:`write_ood` (``supcon ood``): out-of-distribution scores of an encoder
  (:func:`fit_bank` + :func:`ood_scores` on features) and their metrics (:func:`ood_metrics`).

Nothing here imports :mod:`supcon.train`: an export loads in a process that never imports it.
"""

from supcon.use.embed import EMBED_SPLITS, Embeddings, embed_dataset, write_embeddings
from supcon.use.export import (EXPORT_JSON, ExportError, ImageEncoder, export_checkpoint, load_encoder,
                               load_exported_classifier, read_export)
from supcon.use.ood import OODResult, fit_bank, ood_metrics, ood_scores, run_ood, write_ood
from supcon.use.predict import Prediction, predict_images, write_predictions
from supcon.use.trained import TrainedModel, load_trained

__all__ = ["EMBED_SPLITS", "Embeddings", "embed_dataset", "write_embeddings", "EXPORT_JSON", "ExportError",
           "ImageEncoder", "export_checkpoint", "load_encoder", "load_exported_classifier", "read_export",
           "OODResult", "run_ood", "write_ood", "fit_bank", "ood_scores", "ood_metrics",
           "Prediction", "predict_images", "write_predictions", "TrainedModel", "load_trained"]
