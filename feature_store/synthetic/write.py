"""Writing the planted benchmark: each variant's views embedded in its columns (a random basis,
noise outside the subspace, a fixed bias), one store per variant with its oracle figures, and
``ROOT/planted.json`` (the oracle table); reading that table back, and the hidden test labels.
Every store records the planted dataset's classes, ``dataset`` and ``protocol``; fold protocols
add a ``fold`` column (and ``speaker`` for speaker folds).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avcore.progress import Progress
from feature_store.errors import StoreError, StoreExistsError
from feature_store.store.format import META_FILE
from feature_store.store.writer import StoreWriter
from feature_store.synthetic.latents import Latents, draw_latents, observe, view_index
from feature_store.synthetic.oracle import clip_log_likelihoods, oracle_accuracy, posterior
from feature_store.synthetic.params import Generator, View, generator_from_dict
from feature_store.synthetic.shape import dataset_profile, labels_test, protocol


def view_embedding(generator: Generator, view: View, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The view's orthonormal basis ``[dim, rank+1]`` and its fixed bias ``[dim]``."""
    rng = np.random.default_rng(
        np.random.SeedSequence([generator.seed, 2, view_index(generator, view)])
    )
    basis, _ = np.linalg.qr(rng.standard_normal((dim, generator.rank + 1)))
    return basis, rng.normal(0.0, 0.5, size=dim)


def embed(generator: Generator, view: View, obs: np.ndarray, dim: int) -> np.ndarray:
    """Place a view's subspace observations into ``dim`` columns: a random orthonormal basis, noise
    in the orthogonal complement (``complement_noise`` × the view's level), and a fixed bias so the
    vectors look like a backbone's (nonzero mean); neither changes a likelihood ratio."""
    basis, bias = view_embedding(generator, view, dim)
    rng = np.random.default_rng(
        np.random.SeedSequence([generator.seed, 3, view_index(generator, view)])
    )
    noise = generator.complement_noise * view.noise * rng.standard_normal((len(obs), dim))
    # Remove the noise's component inside the subspace: there, obs already holds the right noise.
    noise -= (noise @ basis) @ basis.T
    return (bias + obs @ basis.T + noise).astype(np.float32)


def generate(
    out: str | os.PathLike[str],
    generator: Generator,
    *,
    force: bool = False,
    skip_existing: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Write every variant's store under ``out`` and return the oracle table (also ``planted.json``)."""
    out = Path(out)
    params = generator.as_dict()
    todo = []
    for name in generator.variants:
        meta_path = out / name / META_FILE
        if not meta_path.is_file() or force:
            todo.append(name)
            continue
        existing = json.loads(meta_path.read_text()).get("planted", {}).get("generator")
        if not skip_existing:
            raise StoreExistsError(
                f"{out / name}: already holds a store; refusing to overwrite (use --force)"
            )
        if not _same_generator(existing, generator):
            raise StoreExistsError(
                f"{out / name}: holds a planted store made with other parameters; use --force to replace it"
            )
    if not todo and (out / "planted.json").is_file():
        return load_planted(out)
    dataset_profile(generator)  # an unknown dataset fails here, before any work
    latents = draw_latents(generator)
    observations = {view.name: observe(generator, latents, view) for view in generator.views}
    likelihoods = {
        name: clip_log_likelihoods(generator, latents, name, observations)
        for name in generator.variants
    }
    visual = [n for n in generator.variants if n.startswith("visual/")]
    audio = [n for n in generator.variants if n.startswith("audio/")]
    alone = {
        name: oracle_accuracy(posterior(generator, likelihoods[name]), latents)
        for name in likelihoods
    }
    pairs = {
        f"{v}+{a}": oracle_accuracy(posterior(generator, likelihoods[v], likelihoods[a]), latents)
        for v in visual
        for a in audio
    }
    table = {"generator": params, "alone": alone, "pairs": pairs}
    bar = Progress(len(todo), desc="planted stores", unit="store", enabled=progress)
    for name, views in ((n, generator.variants[n]) for n in todo):
        bar.set_postfix_str(name)
        modality, variant = name.split("/")
        partners = audio if modality == "visual" else visual
        paired = {
            other.split("/")[1]: pairs[
                f"{name}+{other}" if modality == "visual" else f"{other}+{name}"
            ]
            for other in partners
        }
        block = generator.block_dim if modality == "visual" else generator.audio_dim
        columns = [embed(generator, generator.view(v), observations[v], block) for v in views]
        features = np.concatenate(columns, axis=1)
        counts = latents.frames if modality == "visual" else latents.audio_vectors
        component = latents.frame_component if modality == "visual" else latents.audio_component
        _write_variant(
            out / name,
            features,
            counts,
            component == 0,
            latents,
            generator,
            name=f"planted-{variant}",
            modality=modality,
            enhancement=variant,
            planted={
                "generator": params,
                "variant": variant,
                "views": list(views),
                "oracle": {"alone": alone[name], "paired": paired},
            },
            force=force,
        )
        bar.update()
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "planted.json.tmp"
    tmp.write_text(json.dumps(table, indent=2))
    os.replace(tmp, out / "planted.json")
    return table


def _same_generator(existing: Any, generator: Generator) -> bool:
    """Whether a store's recorded generator is ``generator`` (parameters added since it was
    written take their defaults)."""
    try:
        return generator_from_dict(existing) == generator
    except (TypeError, KeyError, AttributeError):
        return False


def _write_variant(
    path: Path,
    features: np.ndarray,
    counts: np.ndarray,
    informative: np.ndarray,
    latents: Latents,
    generator: Generator,
    *,
    name: str,
    modality: str,
    enhancement: str,
    planted: dict[str, Any],
    force: bool,
) -> None:
    starts = np.concatenate([[0], np.cumsum(counts)])
    dataset = {
        "dataset": dataset_profile(generator).name,
        "protocol": protocol(generator).as_dict(),
    }
    hide_test = not labels_test(generator)
    with StoreWriter(
        path,
        name=name,
        modality=modality,
        dim=features.shape[1],
        classes=dataset_profile(generator).classes,
        backbone="planted",
        pretrain="none",
        enhancement=enhancement,
        extra={**dataset, "planted": planted},
        force=force,
    ) as writer:
        for i, clip_id in enumerate(latents.clip_ids):
            rows = slice(starts[i], starts[i + 1])
            provenance: dict[str, Any] = {}
            if latents.folds[i]:
                provenance["fold"] = int(latents.folds[i])
            if latents.speakers is not None:
                provenance["speaker"] = str(latents.speakers[i])
            writer.add(
                clip_id,
                str(latents.splits[i]),
                -1 if hide_test and latents.splits[i] == "test" else int(latents.labels[i]),
                features[rows],
                **provenance,
                informative_vectors=int(informative[rows].sum()),
            )


def load_planted(root: str | os.PathLike[str]) -> dict[str, Any]:
    """The oracle table written by ``generate`` (``ROOT/planted.json``)."""
    path = Path(root) / "planted.json"
    if not path.is_file():
        raise StoreError(
            f"{path}: missing; write planted stores with `python -m feature_store synth`"
        )
    return json.loads(path.read_text())


def hidden_test_labels(root: str | os.PathLike[str]) -> pd.DataFrame:
    """Not part of any store where the dataset hides them (AFEW): the planted test labels, for
    scoring submissions against the oracle. Recomputed from the generator parameters in
    ``planted.json``; empty under a fold protocol (no test split: every fold is labelled)."""
    generator = generator_from_dict(load_planted(root)["generator"])
    latents = draw_latents(generator)
    in_test = latents.splits == "test"
    return pd.DataFrame(
        {"clip_id": np.asarray(latents.clip_ids)[in_test], "label": latents.labels[in_test]}
    )
