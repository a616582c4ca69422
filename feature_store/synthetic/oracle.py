"""The planted model's exact posterior ``p(label | visual, audio)`` (a sum over the evidence class
and the sign of products over vectors of small mixtures), hence the Bayes-optimal (oracle)
accuracy of every variant alone and of every visual x audio pair, and its text table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avcore.afew import CLASSES, TRAIN_COUNTS
from feature_store.synthetic.latents import Latents, components, label_noise_matrix
from feature_store.synthetic.params import SIGNS, Generator


def clip_log_likelihoods(
    generator: Generator,
    latents: Latents,
    variant: str,
    observations: dict[str, np.ndarray],
) -> np.ndarray:
    """``[N, 7, 2]``: log p(clip's vectors of ``variant`` | evidence class, sign), up to a term
    that depends on neither. ``observations`` maps view names to their ``observe`` outputs."""
    modality = variant.split("/")[0]
    views = [(generator.view(name), observations[name]) for name in generator.variants[variant]]
    log_weights, means = components(generator, latents, modality)  # [C], [C, 7, 2, r]
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
    per_vector = np.logaddexp.reduce(log_density, axis=1)  # [vectors, 7, 2]
    counts = latents.frames if modality == "visual" else latents.audio_vectors
    owner = np.repeat(np.arange(len(counts)), counts)
    per_clip = np.zeros((len(counts), len(CLASSES), len(SIGNS)))
    np.add.at(per_clip, owner, per_vector)
    return per_clip


def class_prior() -> np.ndarray:
    counts = np.asarray(TRAIN_COUNTS, float)
    return counts / counts.sum()


def posterior(generator: Generator, *log_likelihoods: np.ndarray) -> np.ndarray:
    """``[N, 7]`` exact p(label | the given modalities), marginalising sign and evidence class."""
    joint = np.log(0.5) + sum(log_likelihoods)  # [N, 7 evidence, 2 signs]
    evidence = np.logaddexp(joint[..., 0], joint[..., 1])
    evidence -= evidence.max(axis=1, keepdims=True)
    # p(label, evidence) = p(label) p(evidence | label), summed over the evidence class.
    post = np.exp(evidence) @ label_noise_matrix(generator).T * class_prior()[None, :]
    return post / post.sum(axis=1, keepdims=True)


def oracle_accuracy(post: np.ndarray, latents: Latents) -> dict[str, float]:
    correct = post.argmax(axis=1) == latents.labels
    return {split: float(correct[latents.splits == split].mean()) for split in ("val", "test")}


def format_table(table: dict[str, Any]) -> str:
    """The oracle accuracies as a small text table (val / test)."""
    alone = table["alone"]
    visual = [k for k in alone if k.startswith("visual/")]
    audio = [k for k in alone if k.startswith("audio/")]
    width = max(len(v) for v in visual) + 2
    lines = [
        "oracle accuracy (val / test)",
        " " * width + "alone".rjust(15) + "".join(a.split("/")[1].rjust(17) for a in audio),
    ]
    for v in visual:
        cells = [f"{alone[v]['val']:.3f} / {alone[v]['test']:.3f}".rjust(15)]
        cells += [
            f"{table['pairs'][f'{v}+{a}']['val']:.3f} / {table['pairs'][f'{v}+{a}']['test']:.3f}".rjust(
                17
            )
            for a in audio
        ]
        lines.append(v.ljust(width) + "".join(cells))
    for a in audio:
        lines.append(a.ljust(width) + f"{alone[a]['val']:.3f} / {alone[a]['test']:.3f}".rjust(15))
    return "\n".join(lines)
