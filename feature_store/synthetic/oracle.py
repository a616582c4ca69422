"""The planted model's exact posterior ``p(label | visual, audio)`` (a sum over the evidence class
and the sign of products over vectors of small mixtures), hence the Bayes-optimal (oracle)
accuracy of every variant alone and of every visual x audio pair, and its text table.

A fixed protocol's figures are ``{val, test}``; a fold protocol's are ``{folds: {"1": {test,
rest}, ...}, mean: {test, rest}}``: fold k's ``test`` is the accuracy on fold k's clips (the
reference for a search's test figure on that fold) and ``rest`` on the other folds' clips (the
reference for its val figure, carved from them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from feature_store.synthetic.latents import Latents, components, label_noise_matrix
from feature_store.synthetic.params import SIGNS, Generator
from feature_store.synthetic.shape import dataset_profile


def clip_log_likelihoods(
    generator: Generator,
    latents: Latents,
    variant: str,
    observations: dict[str, np.ndarray],
) -> np.ndarray:
    """``[N, K, 2]``: log p(clip's vectors of ``variant`` | evidence class, sign), up to a term
    that depends on neither. ``observations`` maps view names to their ``observe`` outputs."""
    modality = variant.split("/")[0]
    views = [(generator.view(name), observations[name]) for name in generator.variants[variant]]
    log_weights, means = components(generator, latents, modality)  # [C], [C, K, 2, r]
    flat = means.reshape(-1, means.shape[-1])
    total_vectors = len(views[0][1])
    # Gaussian log-density relative to a zero-mean vector: (o·μ)/σ² − |μ|²/(2σ²), summed over views.
    log_density = np.zeros((total_vectors, len(flat)))
    for view, obs in views:
        mu = view.gain * flat
        log_density += (obs @ mu.T - 0.5 * (mu**2).sum(-1)) / view.noise**2
    log_density = (
        log_density.reshape(total_vectors, *means.shape[:3]) + log_weights[None, :, None, None]
    )
    per_vector = np.logaddexp.reduce(log_density, axis=1)  # [vectors, K, 2]
    counts = latents.frames if modality == "visual" else latents.audio_vectors
    owner = np.repeat(np.arange(len(counts)), counts)
    per_clip = np.zeros((len(counts), means.shape[1], len(SIGNS)))
    np.add.at(per_clip, owner, per_vector)
    return per_clip


def class_prior(generator: Generator) -> np.ndarray:
    """``[K]``: the planted dataset's class frequencies (its profile's class counts)."""
    counts = np.asarray(dataset_profile(generator).class_counts, float)
    return counts / counts.sum()


def posterior(generator: Generator, *log_likelihoods: np.ndarray) -> np.ndarray:
    """``[N, K]`` exact p(label | the given modalities), marginalising sign and evidence class."""
    joint = np.log(0.5) + sum(log_likelihoods)  # [N, K evidence, 2 signs]
    evidence = np.logaddexp(joint[..., 0], joint[..., 1])
    evidence -= evidence.max(axis=1, keepdims=True)
    # p(label, evidence) = p(label) p(evidence | label), summed over the evidence class.
    post = np.exp(evidence) @ label_noise_matrix(generator).T * class_prior(generator)[None, :]
    return post / post.sum(axis=1, keepdims=True)


def oracle_accuracy(post: np.ndarray, latents: Latents) -> dict[str, Any]:
    """Accuracy of the posterior's argmax: ``{val, test}`` (fixed) or per fold (fold protocols)."""
    correct = post.argmax(axis=1) == latents.labels
    if not latents.folds.any():
        return {split: float(correct[latents.splits == split].mean()) for split in ("val", "test")}
    folds = {
        str(fold): {
            "test": float(correct[latents.folds == fold].mean()),
            "rest": float(correct[latents.folds != fold].mean()),
        }
        for fold in range(1, int(latents.folds.max()) + 1)
    }
    mean = {part: float(np.mean([f[part] for f in folds.values()])) for part in ("test", "rest")}
    return {"folds": folds, "mean": mean}


def _fold_tests(figures: dict[str, Any]) -> list[float]:
    return [fold["test"] for fold in figures["folds"].values()]


def _cell(figures: dict[str, Any]) -> str:
    """``val / test`` (fixed) or the test folds' ``mean ± std``."""
    if "folds" not in figures:
        return f"{figures['val']:.3f} / {figures['test']:.3f}"
    tests = _fold_tests(figures)
    return f"{np.mean(tests):.3f} ± {np.std(tests):.3f}"


def format_table(table: dict[str, Any]) -> str:
    """The oracle accuracies as a small text table: val / test (fixed protocols), or the accuracy
    on the test fold, mean ± std over the folds (fold protocols; every fold's test and rest
    figures are in ``planted.json``)."""
    alone = table["alone"]
    visual = [k for k in alone if k.startswith("visual/")]
    audio = [k for k in alone if k.startswith("audio/")]
    folds = alone[visual[0]].get("folds")
    title = "oracle accuracy (val / test)"
    if folds:
        dataset = table["generator"].get("dataset", "afew")
        title = f"oracle accuracy on the test fold, {dataset} (mean ± std over {len(folds)} folds)"
    width = max(len(v) for v in visual) + 2
    lines = [
        title,
        " " * width + "alone".rjust(15) + "".join(a.split("/")[1].rjust(17) for a in audio),
    ]
    for v in visual:
        cells = [_cell(alone[v]).rjust(15)]
        cells += [_cell(table["pairs"][f"{v}+{a}"]).rjust(17) for a in audio]
        lines.append(v.ljust(width) + "".join(cells))
    for a in audio:
        lines.append(a.ljust(width) + _cell(alone[a]).rjust(15))
    return "\n".join(lines)


def describe(figures: dict[str, Any]) -> str:
    """One store's oracle figures in words (``inspect``): val and test, or per test fold."""
    if "folds" not in figures:
        return f"val {figures['val']:.4f}  test {figures['test']:.4f}"
    tests = _fold_tests(figures)
    each = " ".join(f"{test:.3f}" for test in tests)
    return f"test fold {np.mean(tests):.4f} ± {np.std(tests):.4f} (folds 1..{len(tests)}: {each})"
