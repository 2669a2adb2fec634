"""The commands that use a trained encoder: embed, predict, export and ood. Each parses its flags, calls
:mod:`supcon.use` and prints what it wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

from supcon.config import ConfigError
from supcon.report.tables import markdown_table
from supcon.runfiles import write_text_atomic
from supcon.use.embed import EMBED_FORMATS, EMBED_SPLITS, check_embeddings_path, embed_dataset, write_embeddings
from supcon.use.export import export_checkpoint, read_export
from supcon.use.ood import OOD_CSV, OOD_JSON, OOD_MD, OOD_SPLITS, ood_rows, parse_scores, run_ood, write_ood
from supcon.use.ood_scoring import DEFAULT_K, OOD_SCORES
from supcon.use.predict import check_predictions_path, predict_images, write_predictions

__all__ = ["add_embed_arguments", "run_embed_command", "add_predict_arguments", "run_predict_command",
           "add_export_arguments", "run_export_command", "add_ood_arguments", "run_ood_command"]


def _add_inference_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")


def add_embed_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="any checkpoint.pt with an encoder: pretrain, CE, linear probe or fine-tune")
    p.add_argument("--dataset", required=True, help="dataset spec: folder:DIR, npz:FILE, idx:DIR, cifar10:DIR, digits")
    p.add_argument("--split", choices=EMBED_SPLITS, default="test",
                   help="which split (the checkpoint's seed and test fraction); all = train then test (default: test)")
    p.add_argument("--out", type=Path, required=True, help=f"output file, by suffix: {' or '.join(EMBED_FORMATS)}")
    p.add_argument("--projection", action="store_true",
                   help="also the normalised projection (pretrain checkpoints, or a linear probe's)")
    p.add_argument("--skip-bad-images", action="store_true", help="leave unreadable folder images out")
    _add_inference_flags(p)


def run_embed_command(args: argparse.Namespace) -> int:
    check_embeddings_path(args.out)  # fail before embedding anything
    embeddings = embed_dataset(args.checkpoint, args.dataset, args.split, projection=args.projection,
                               device=args.device, batch_size=args.batch_size, skip_bad_images=args.skip_bad_images)
    out = write_embeddings(embeddings, args.out)
    extra = f" and {embeddings.projections.shape[1]}-d projections" if embeddings.projections is not None else ""
    print(f"embed: {len(embeddings)} images ({args.split}) -> {embeddings.features.shape[1]}-d representations"
          f"{extra} in {out}")
    return 0


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="linear-probe, fine-tune or CE checkpoint.pt")
    p.add_argument("--images", type=Path, nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="image files and folders of them (walked, sorted)")
    p.add_argument("--out", type=Path, required=True, help="output CSV: one row per image")
    p.add_argument("--top-k", type=int, default=5, help="classes per row, most probable first (default: 5)")
    _add_inference_flags(p)


def run_predict_command(args: argparse.Namespace) -> int:
    check_predictions_path(args.out)  # fail before predicting anything
    predictions = predict_images(args.checkpoint, args.images, top_k=args.top_k, device=args.device,
                                 batch_size=args.batch_size)
    out = write_predictions(predictions, args.out, args.top_k)
    failed = sum(1 for p in predictions if p.error)
    note = f", {failed} unreadable (see the error column)" if failed else ""
    print(f"predict: {len(predictions)} images{note} -> {out}")
    return 0


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="pretrain checkpoint (exports the encoder) or linear-probe, fine-tune or CE (the classifier)")
    p.add_argument("--out", type=Path, required=True, help="export folder")
    p.add_argument("--onnx", action="store_true", help="also model.onnx, checked against onnxruntime ([onnx] extra)")


def run_export_command(args: argparse.Namespace) -> int:
    path = export_checkpoint(args.checkpoint, args.out, onnx=args.onnx)
    loaders = ["load_encoder"] + (["load_classifier"] if read_export(args.out)["kind"] == "classifier" else [])
    print(f"export: {path} and its weights in {args.out}; load with "
          + " or ".join(f"supcon.{name}({str(args.out)!r})" for name in loaders))
    return 0


def add_ood_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="pretrain (representation scores only), CE, linear-probe or fine-tune checkpoint.pt")
    p.add_argument("--in-dataset", default=None,
                   help="in-distribution dataset spec: its train split fits the scores, its test split is scored "
                        "(default: the checkpoint's training dataset)")
    p.add_argument("--ood-dataset", required=True, help="OOD dataset spec, adapted to the encoder's size and channels")
    p.add_argument("--ood-split", choices=OOD_SPLITS, default="test",
                   help="which split of the OOD dataset is scored (default: test)")
    p.add_argument("--scores", default="all",
                   help=f"all, or comma-separated names from {','.join(OOD_SCORES)} (default: all the checkpoint has)")
    p.add_argument("--k", type=int, default=DEFAULT_K,
                   help=f"the kNN score's neighbour: distance to the k-th nearest train feature (default: {DEFAULT_K})")
    p.add_argument("--out", type=Path, default=Path("runs/ood"), help="output folder (default: runs/ood)")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip the histogram PNGs")
    p.add_argument("--skip-bad-images", action="store_true", help="leave unreadable folder images out")
    _add_inference_flags(p)


def run_ood_command(args: argparse.Namespace) -> int:
    scores = parse_scores(args.scores)  # fail before embedding anything
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; pass a folder")
    result = run_ood(args.checkpoint, args.ood_dataset, args.in_dataset, ood_split=args.ood_split, scores=scores,
                     k=args.k, device=args.device, batch_size=args.batch_size, skip_bad_images=args.skip_bad_images)
    write_ood(result, args.out)
    table = markdown_table(*ood_rows(result.summary))
    write_text_atomic(args.out / OOD_MD, table + "\n")
    if args.plots:
        from supcon.report.ood_plots import write_ood_plots  # matplotlib only when plotting

        write_ood_plots(result, args.out)
    s = result.summary
    print(f"OOD: {s['label']} ({args.checkpoint}); in {s['in_dataset']} (test split, {s['in_count']} images; "
          f"train split {s['in_train_count']} fits the scores) vs OOD {s['ood_dataset']} ({s['ood_split']} split, "
          f"{s['ood_count']} images); in-distribution is the positive class, k = {s['k']}:")
    print(table)
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"\n{OOD_JSON}, {OOD_CSV}, {OOD_MD}{' and plots' if args.plots else ''} in {args.out}")
    return 0
