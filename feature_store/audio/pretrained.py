"""A released model's folder, in the layout the Hugging Face Hub distributes, read safely and
offline: ``config.json`` (its ``model_type`` checked), ``preprocessor_config.json`` (the feature
extractor's settings), and the weights as ``model.safetensors`` (read by safetensors) or
``pytorch_model.bin`` (first read through the project's safe loader, ``feature_store.weights``:
a file holding pickled objects is refused in one line before anything in it runs; transformers then
reads it with ``torch.load(weights_only=True)``), sharded variants with their index included.

``transformers`` is only ever given the folder with ``local_files_only=True``: nothing is
downloaded. Whatever is wrong with a folder is one ``WeightsError`` line naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from feature_store.weights import WeightsError, read_checkpoint

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
LAYOUT = "config.json, preprocessor_config.json and model.safetensors or pytorch_model.bin"
# Parameters only pre-training uses (the mask embedding of masked prediction): a released
# checkpoint may lack them and features do not depend on them.
TRAINING_ONLY = ("masked_spec_embed",)


def read_config(folder: Path, model_types: Sequence[str], kind: str) -> dict[str, Any]:
    """``config.json`` of ``folder`` as a dict, its ``model_type`` one of ``model_types``."""
    if not folder.is_dir():
        raise WeightsError(f"{folder}: no such model folder (download it once: {LAYOUT})")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: missing; a model folder as the Hub has it holds {LAYOUT}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: expected a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    if model_type not in model_types:
        raise WeightsError(
            f"{path}: model_type {model_type!r} is not a {kind} model (expected "
            f"{' or '.join(map(repr, model_types))})"
        )
    if not (folder / PREPROCESSOR_FILE).is_file():
        raise WeightsError(
            f"{folder / PREPROCESSOR_FILE}: missing; the feature extractor's settings (sampling "
            "rate, normalisation) come with the model from the Hub"
        )
    return config


def weight_files(folder: Path) -> list[Path]:
    """The weights files transformers will read: safetensors first (one file or the shards of its
    index), else ``pytorch_model.bin`` (or its shards), each ``.bin`` checked by the safe loader."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        single, index = folder / name, folder / f"{name}.index.json"
        if single.is_file():
            files = [single]
        elif index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                raise WeightsError(f"{index}: not a weights index (no weight_map)") from None
            files = [folder / shard for shard in shards]
            absent = [f for f in files if not f.is_file()]
            if absent:
                raise WeightsError(f"{absent[0]}: listed in {index.name} but missing")
        else:
            continue
        if name.endswith(".bin"):
            for path in files:
                read_checkpoint(path)  # a pickle that would run code is refused here, unrun
        return files
    raise WeightsError(f"{folder}: no model.safetensors or pytorch_model.bin (folder: {LAYOUT})")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars or load reports from transformers: we check the loading info ourselves."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def load_model(model_class: Any, folder: Path, files: list[Path]) -> Any:
    """``model_class.from_pretrained(folder)`` offline, in eval mode; a weight the model needs
    that the files lack, or one of the wrong shape, is one line."""
    with quiet_transformers():
        try:
            model, info = model_class.from_pretrained(
                str(folder),
                local_files_only=True,
                weights_only=True,
                use_safetensors=files[0].name.endswith(".safetensors"),
                output_loading_info=True,
            )
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise WeightsError(
                f"{folder}: cannot load as {model_class.__name__} ({reason})"
            ) from None
    missing = sorted(k for k in info["missing_keys"] if k.rsplit(".", 1)[-1] not in TRAINING_ONLY)
    if missing:
        shown = ", ".join(missing[:4]) + (
            f", ... ({len(missing)} in all)" if len(missing) > 4 else ""
        )
        raise WeightsError(
            f"{files[0]}: lacks weights {model_class.__name__} needs: {shown} (another model?)"
        )
    return model.eval()


def load_feature_extractor(extractor_class: Any, folder: Path) -> Any:
    """The feature extractor from ``preprocessor_config.json``, offline."""
    with quiet_transformers():
        try:
            return extractor_class.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise WeightsError(f"{folder / PREPROCESSOR_FILE}: cannot be read ({reason})") from None


def provenance(
    folder: Path, config: dict[str, Any], files: list[Path], model: Any, extractor: Any
) -> dict[str, Any]:
    """What store.json records of a released model: folder, class, weights' sha256, versions."""
    import torch
    import transformers

    return {
        "model": str(folder),
        "model_class": type(model).__name__,
        "model_type": config["model_type"],
        "weights": {path.name: sha256(path) for path in files},
        "feature_extractor": type(extractor).__name__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
