"""Checkpoints: one dict, written atomically, loaded with ``weights_only=True``; and the models in them.

Every command that reads a checkpoint goes through this module: :func:`encoder_from_checkpoint`
(pretrain or CE checkpoints), :func:`load_classifier` (linear-probe, fine-tune or CE checkpoints:
``images -> logits``) and :func:`load_supcon_model` (encoder + projection head).

Layout::

    {"format": "supcon", "version": 1, "kind": "pretrain" | "ce" | "linear",
     "epoch": int (epochs completed), "config": dict, "signature": dict,
     "model": state_dict, "optimizer": state_dict, "extra": {...},
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...]},
     "normalization": {"mean": [...], "std": [...]}, "num_classes": int, "classes": [...]}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from supcon.augment import Normalize, to_float_images
from supcon.config import Config, config_from_dict, known_config_values
from supcon.data.adapt import EncoderInput
from supcon.models import CEModel, LinearClassifier, ProbeClassifier, SupConModel, build_encoder
from supcon.runfiles import write_atomic

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "capture_rng", "restore_rng",
           "FORMAT", "VERSION", "checkpoint_config", "encoder_from_signature", "load_weights",
           "encoder_from_checkpoint", "source_checkpoint", "ImageClassifier", "load_classifier",
           "load_supcon_model", "checkpoint_entry", "load_failure", "encoder_input"]

FORMAT = "supcon"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a supcon checkpoint, or one that does not fit the model asked for."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Writes ``state`` to ``path`` atomically: a temp file in the same folder, then rename.

    A crash (or a killed rank) mid-write leaves the previous checkpoint intact and at most a
    stray ``.tmp`` file, never a truncated checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    write_atomic(path, lambda handle: torch.save(payload, handle), fsync=True)


def load_failure(exc: BaseException) -> str:
    """``"UnpicklingError: ..."``: the gist of why ``torch.load(weights_only=True)`` failed, in one line.

    torch's weights-only message runs to many lines and suggests ``weights_only=False``: only its gist
    is kept.
    """
    detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if "Weights only load failed" in detail:
        detail = "it holds objects a weights-only load refuses, or is not a torch file"
    return f"{exc.__class__.__name__}: {detail[:200]}"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Loads a supcon checkpoint safely; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, foreign formats
        raise CheckpointError(f"{path} is not a readable supcon checkpoint ({load_failure(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a supcon checkpoint (no 'format: supcon' entry)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')}, expected {VERSION}")
    if kind is not None:
        kinds = (kind,) if isinstance(kind, str) else kind
        if state.get("kind") not in kinds:
            raise CheckpointError(f"{path} is a {state.get('kind')!r} checkpoint, expected one of {kinds}")
    return state


def capture_rng() -> dict[str, Any]:
    """The global RNG states (torch CPU, and CUDA when present)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restores :func:`capture_rng`'s states; they may have been loaded onto any device."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# ---------------------------------------------------------------------------------------------
# Checkpoints -> models
# ---------------------------------------------------------------------------------------------


def checkpoint_entry(state: Mapping[str, Any], path: str | Path, *keys: str) -> Any:
    """``state[keys[0]][keys[1]]...``, each level checked to be there.

    Raises:
        CheckpointError: naming the file and the first key that is missing (or whose parent is not a
            mapping): a damaged file, or one not written by supcon.
    """
    value: Any = state
    for depth, key in enumerate(keys):
        if not isinstance(value, Mapping) or key not in value:
            where = "".join(f"[{k!r}]" for k in keys[: depth + 1])
            raise CheckpointError(f"{path} has no {where} entry: the checkpoint is damaged or was not written "
                                  "by supcon")
        value = value[key]
    return value


def checkpoint_config(state: Mapping[str, Any]) -> Config:
    """The :class:`Config` stored in a checkpoint (keys this version does not know are dropped)."""
    return config_from_dict(known_config_values(dict(state.get("config", {}))))


def encoder_from_signature(signature: Mapping[str, Any], path: str | Path) -> nn.Module:
    """A fresh encoder of the architecture a checkpoint's ``signature`` names."""
    if not isinstance(signature, Mapping) or not {"arch", "in_channels"} <= set(signature):
        raise CheckpointError(f"{path} has no model signature (arch, in_channels)")
    try:
        return build_encoder(signature["arch"], in_channels=signature["in_channels"],
                             stem=signature.get("stem") or "cifar", width=signature.get("width", 1),
                             image_size=signature.get("image_size"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} names a model this version cannot build: {exc}") from None


def load_weights(module: nn.Module, weights: Mapping[str, Tensor], path: str | Path, what: str) -> None:
    """``module.load_state_dict(weights)``, with a CheckpointError naming the file on a mismatch."""
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{path}: the {what} weights are a {type(weights).__name__}, not a state dict")
    try:
        module.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: the {what} weights do not fit the model it names: {exc}") from None


def encoder_from_checkpoint(path: str | Path, cfg: Config | None = None, *,
                            channels: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds the encoder stored in a pretrain or CE checkpoint (architecture from the file).

    Returns:
        ``(encoder, state)``: the encoder with its trained weights, and the checkpoint's dict.

    Raises:
        CheckpointError: not a supcon checkpoint, or the weights do not fit the architecture it
            names, or ``channels`` differs from the data the encoder was trained on.
    """
    state = load_checkpoint(path, kind=("pretrain", "ce"))
    sig = state.get("signature", {})
    encoder = encoder_from_signature(sig, path)
    if channels is not None and channels != encoder.in_channels:
        raise CheckpointError(f"{path} holds an encoder for {encoder.in_channels}-channel images, "
                              f"the dataset has {channels} channels")
    weights = _state_dict_entry(state, path, "model", "model")
    prefix = "encoder."
    load_weights(encoder, {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)},
                 path, f"{sig['arch']!r} encoder")
    return encoder, state


def encoder_input(state: Mapping[str, Any], path: str | Path) -> EncoderInput | None:
    """What the encoder of a pretrain or CE checkpoint takes: channels, image side and the
    normalisation of its training split (plus the dataset spec and class count it was trained on).

    Returns ``None`` for a checkpoint that does not record its data (``channels``, ``image_size``,
    ``normalization``): written by hand or by an early version; its encoder is then used as it is.

    Raises:
        CheckpointError: entries that are there but unusable (not positive ints, or statistics that
            are not one number per channel).
    """
    norm, channels, side = state.get("normalization"), state.get("channels"), state.get("image_size")
    if channels is None or side is None or not isinstance(norm, Mapping):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (channels, side)):
        raise CheckpointError(f"{path}: channels {channels!r} and image_size {side!r} must be positive ints")
    mean, std = norm.get("mean"), norm.get("std")
    if not all(isinstance(v, (list, tuple)) and len(v) == channels and all(isinstance(x, (int, float)) for x in v)
               for v in (mean, std)):
        raise CheckpointError(f"{path}: its 'normalization' entry must hold {channels} means and {channels} "
                              f"standard deviations, got {mean!r} and {std!r}")
    count = state.get("num_classes")
    dataset = state.get("config", {}).get("dataset") if isinstance(state.get("config"), Mapping) else None
    return EncoderInput(channels=channels, image_size=side, mean=tuple(float(m) for m in mean),
                        std=tuple(float(x) for x in std), dataset=str(dataset) if dataset else None,
                        num_classes=count if isinstance(count, int) and not isinstance(count, bool) else None)


def _state_dict_entry(state: Mapping[str, Any], path: str | Path, *keys: str) -> Mapping[str, Any]:
    """:func:`checkpoint_entry` that must be a mapping (a state dict, or a dict of them)."""
    value = checkpoint_entry(state, path, *keys)
    if not isinstance(value, Mapping):
        where = "".join(f"[{k!r}]" for k in keys)
        raise CheckpointError(f"{path}: {where} is a {type(value).__name__}, expected a dict of weights")
    return value


def source_checkpoint(path: Path, state: Mapping[str, Any]) -> Path:
    """The pretrain checkpoint a linear checkpoint names, also found when the run was moved."""
    given = state.get("source_checkpoint")
    if not given:
        raise CheckpointError(f"{path} is a linear checkpoint without a 'source_checkpoint' entry")
    src = Path(given)
    candidates = [src, path.parent / src, path.parent.parent / src.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"{path} names its encoder checkpoint {given}, which does not exist (also looked for "
        f"{candidates[1]} and {candidates[2]})")


class ImageClassifier(nn.Module):
    """``images -> logits`` with the training split's normalisation built in.

    Args:
        encoder: ``(B, C, H, W)`` normalised float images -> ``(B, D)`` representations.
        classifier: ``(B, D) -> (B, num_classes)``.
        mean, std: per-channel normalisation of the training split.
        info: what the checkpoint says about itself (kind, method, classes, config, paths).

    Shapes:
        ``forward``: ``(B, C, H, W)`` uint8 in 0..255 or float in [0, 1] -> ``(B, num_classes)``.
    """

    def __init__(self, encoder: nn.Module, classifier: nn.Module, mean: tuple[float, ...] | list[float],
                 std: tuple[float, ...] | list[float], info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.encoder = encoder
        self.classifier = classifier
        self.info: dict[str, Any] = dict(info or {})

    @property
    def classes(self) -> list[str]:
        return list(self.info.get("classes", []))

    def forward(self, images: Tensor) -> Tensor:
        x = to_float_images(images).to(self.normalize.mean.dtype)
        return self.classifier(self.encoder(self.normalize(x)))


def _ce_parts(path: Path, state: Mapping[str, Any]) -> tuple[nn.Module, nn.Module]:
    """Encoder and classifier of a ``ce`` checkpoint (the whole CEModel is stored)."""
    sig = state.get("signature", {})
    model = CEModel(encoder_from_signature(sig, path), int(sig.get("num_classes", state.get("num_classes", 0))))
    load_weights(model, _state_dict_entry(state, path, "model", "model"), path, "CE model")
    return model.encoder, model.classifier


def _linear_parts(path: Path, state: Mapping[str, Any]) -> tuple[nn.Module, nn.Module, Path | None]:
    """Encoder, classifier and encoder source of a ``linear`` checkpoint.

    A fine-tuned checkpoint carries its own encoder; a linear probe's frozen encoder comes from
    the pretrain checkpoint it names.
    """
    sig = state.get("signature", {})
    weights = _state_dict_entry(state, path, "model")
    source = None
    if "encoder" in weights:
        encoder = encoder_from_signature(sig, path)
        load_weights(encoder, _state_dict_entry(state, path, "model", "encoder"), path, "encoder")
    else:
        source = source_checkpoint(path, state)
        encoder, src_state = encoder_from_checkpoint(source, channels=sig.get("in_channels"))
        src_sig = src_state.get("signature", {})
        for key in ("arch", "in_channels", "width", "out_dim"):
            if key in sig and key in src_sig and sig[key] != src_sig[key]:
                raise CheckpointError(
                    f"{source} holds a {key}={src_sig[key]!r} encoder, but {path} was trained on "
                    f"a {key}={sig[key]!r} one: the pretrain checkpoint was replaced")
    probe_weights = _state_dict_entry(state, path, "model", "classifier")
    # standardised probe (features -> BatchNorm, no affine -> linear), or a plain linear probe
    # (checkpoints written before the probe standardised its features)
    key = "linear.weight" if "linear.weight" in probe_weights else "weight"
    w = checkpoint_entry(state, path, "model", "classifier", key)
    if not isinstance(w, Tensor) or w.ndim != 2:
        raise CheckpointError(f"{path}: the linear classifier's {key!r} is not a 2-D weight matrix")
    classifier: nn.Module = (ProbeClassifier if key == "linear.weight" else LinearClassifier)(
        int(w.shape[1]), int(w.shape[0]))
    load_weights(classifier, probe_weights, path, "linear classifier")
    return encoder, classifier, source


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu") -> ImageClassifier:
    """Rebuilds the classifier (``images -> logits``) stored in a checkpoint.

    A ``linear`` checkpoint holds the linear classifier; its frozen encoder comes from the pretrain
    checkpoint named by ``source_checkpoint`` (looked up as written, relative to the linear
    checkpoint, and as ``../checkpoint.pt`` beside the linear run, the ``supcon run`` layout).
    A fine-tuned ``linear`` checkpoint holds its own encoder. A ``ce`` checkpoint holds the whole
    :class:`supcon.models.CEModel`.

    Args:
        path: a ``linear`` or ``ce`` checkpoint.
        map_location: where to load the weights.

    Returns:
        An :class:`ImageClassifier` in eval mode, with ``info`` holding ``kind``, ``method``,
        ``classes``, ``num_classes``, ``channels``, ``image_size``, ``config`` and ``path``.

    Raises:
        CheckpointError: a missing or foreign file, a pretrain checkpoint (no classifier), or
            weights that do not fit the architecture they name.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location=map_location)
    kind = state.get("kind")
    if kind == "pretrain":
        raise CheckpointError(
            f"{path} is a pretrain checkpoint (encoder and projection head, no classifier): train a "
            f"linear probe with `supcon linear --checkpoint {path}` and pass its checkpoint")
    if kind not in ("linear", "ce"):
        raise CheckpointError(f"{path} is a {kind!r} checkpoint, expected a 'linear' or 'ce' checkpoint")
    if kind == "ce":
        (encoder, classifier), source, method = _ce_parts(path, state), None, "ce"
    else:
        encoder, classifier, source = _linear_parts(path, state)
        method = state.get("method", "?")
    norm = state.get("normalization")
    if not isinstance(norm, Mapping) or not {"mean", "std"} <= set(norm):
        raise CheckpointError(f"{path} has no 'normalization' entry (mean, std of the training split)")
    info = {
        "kind": kind, "method": method, "path": str(path),
        "source_checkpoint": str(source) if source is not None else None,
        "classes": list(state.get("classes", [])), "num_classes": state.get("num_classes"),
        "channels": state.get("channels"), "image_size": state.get("image_size"),
        "config": dict(state.get("config", {})),
    }
    return ImageClassifier(encoder, classifier, norm["mean"], norm["std"], info).eval()


def load_supcon_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The encoder + projection head of a pretrain checkpoint (a linear one leads to its source).

    Returns:
        ``(model, state)``: a :class:`supcon.models.SupConModel` in eval mode and the pretrain
        checkpoint's dict.

    Raises:
        CheckpointError: not a pretrain (or linear) checkpoint, or weights that do not fit.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location=map_location, kind=("pretrain", "linear", "ce"))
    if state["kind"] == "ce":
        raise CheckpointError(f"{path} is a cross-entropy checkpoint: it has no projection head to "
                              "analyse; pass a pretrain checkpoint")
    if state["kind"] == "linear":
        if "encoder" in _state_dict_entry(state, path, "model"):
            raise CheckpointError(f"{path} is a fine-tuned checkpoint (no projection head); "
                                  "pass its pretrain checkpoint")
        path = source_checkpoint(path, state)
        state = load_checkpoint(path, map_location=map_location, kind="pretrain")
    sig = state.get("signature", {})
    model = SupConModel(encoder_from_signature(sig, path), head=sig.get("head", "mlp"),
                        feat_dim=int(sig.get("feat_dim", 128)))
    load_weights(model, _state_dict_entry(state, path, "model", "model"), path, "SupCon model")
    state["path"] = str(path)
    return model.eval(), state
