"""The planted model's draws: what every clip draws once (``Latents``: split, fold, label,
evidence class, sign, frame and audio-vector counts, which vectors are informative), the mixture a
vector is drawn from (``components``) and a view's noisy observations of it (``observe``). K is the
class count of the planted dataset (``shape``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feature_store.synthetic.params import SIGNS, Generator, View
from feature_store.synthetic.shape import assign_folds, clip_ids, num_classes, split_labels


@dataclass
class Latents:
    """What every clip drew once; all variants observe these."""

    clip_ids: list[str]
    splits: np.ndarray  # [N] str
    folds: (
        np.ndarray
    )  # [N] int: the fold whose test the clip is in (1..k), 0 under a fixed protocol
    speakers: np.ndarray | None  # [N] str under a speakers protocol, else None
    labels: np.ndarray  # [N] int
    signs: np.ndarray  # [N] ±1
    frames: np.ndarray  # [N] visual vectors per clip
    audio_vectors: np.ndarray  # [N] audio vectors per clip
    evidence: np.ndarray  # [N] the class the clip's evidence shows (= label but for label noise)
    frame_component: np.ndarray  # [sum(frames)] 0 = informative, 1..K = distractor of class z
    audio_component: np.ndarray  # [sum(audio_vectors)] 0 = informative, 1 = sign carrier only
    fixed: np.ndarray  # [K, rank] visual evidence that keeps its meaning
    flip: np.ndarray  # [K, rank] visual evidence whose meaning flips with the sign
    audio_class: np.ndarray  # [K, rank] audio class evidence
    sign_direction: np.ndarray  # [rank] carries the sign in every audio vector


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def draw_latents(generator: Generator) -> Latents:
    rng = np.random.default_rng(np.random.SeedSequence([generator.seed, 0]))
    splits, labels = split_labels(generator, rng)
    n, k = len(labels), num_classes(generator)
    strength = np.asarray(generator.strengths(k))[:, None]
    fixed = _unit_rows(rng, k, generator.rank) * strength * generator.fixed_strength
    flip = _unit_rows(rng, k, generator.rank) * strength * generator.flip_strength
    audio_class = _unit_rows(rng, k, generator.rank) * strength * generator.audio_strength
    sign_direction = _unit_rows(rng, 1, generator.rank)[0] * generator.sign_strength
    signs = rng.choice(SIGNS, size=n)
    frames = rng.integers(generator.min_frames, generator.max_frames + 1, size=n)
    frames[rng.random(n) < generator.empty_visual_rate] = 0
    per_segment = generator.audio_grid[0] * generator.audio_grid[1]
    audio_vectors = rng.integers(1, generator.max_segments + 1, size=n) * per_segment
    noise = label_noise_matrix(generator)
    evidence = np.array([rng.choice(k, p=noise[label]) for label in labels])
    folds, speakers = assign_folds(generator, labels)
    return Latents(
        clip_ids=clip_ids(generator, splits),
        splits=splits,
        folds=folds,
        speakers=speakers,
        labels=labels,
        signs=signs,
        frames=frames,
        audio_vectors=audio_vectors,
        evidence=evidence,
        frame_component=np.where(
            rng.random(frames.sum()) < generator.frame_rate,
            0,
            rng.integers(1, k + 1, size=frames.sum()),
        ),
        audio_component=(rng.random(audio_vectors.sum()) >= generator.audio_rate).astype(int),
        fixed=fixed,
        flip=flip,
        audio_class=audio_class,
        sign_direction=sign_direction,
    )


def label_noise_matrix(generator: Generator) -> np.ndarray:
    """``[K, K]``: p(evidence class | label): the label with probability ``label_agreement``, else
    any other class uniformly (AFEW's labels are ambiguous too)."""
    k = num_classes(generator)
    other = (1.0 - generator.label_agreement) / (k - 1)
    return np.full((k, k), other) + np.eye(k) * (generator.label_agreement - other)


def components(
    generator: Generator, latents: Latents, modality: str
) -> tuple[np.ndarray, np.ndarray]:
    """The mixture a vector of this modality is drawn from: log weights ``[C]`` and means
    ``[C, K, 2, rank+1]`` per evidence class and sign (the last coordinate is the salience marker).

    visual: 0 = informative (``fixed_y + s·flip_y`` + marker), 1..K = a distractor frame showing
    class z's fixed pattern weakly, without the marker (z uniform, independent of the clip);
    audio: 0 = informative (``s·κ·u + η_y`` + marker), 1 = ``s·κ·u`` alone.
    """
    k, rank = len(latents.fixed), generator.rank
    signs = np.asarray(SIGNS)[None, :, None]
    if modality == "visual":
        means = np.zeros((1 + k, k, len(SIGNS), rank + 1))
        means[0, :, :, :-1] = latents.fixed[:, None, :] + signs * latents.flip[:, None, :]
        means[0, :, :, -1] = generator.marker
        means[1:, :, :, :-1] = generator.distractor * latents.fixed[:, None, None, :]
        rate = generator.frame_rate
        weights = np.concatenate([[rate], np.full(k, (1.0 - rate) / k)])
    else:
        means = np.zeros((2, k, len(SIGNS), rank + 1))
        carrier = signs * latents.sign_direction[None, None, :]  # [1, 2, rank]
        means[0, :, :, :-1] = carrier + latents.audio_class[:, None, :]
        means[0, :, :, -1] = generator.audio_marker
        means[1, :, :, :-1] = carrier
        rate = generator.audio_rate
        weights = np.array([rate, 1.0 - rate])
    return np.log(weights), means


def observe(generator: Generator, latents: Latents, view: View) -> np.ndarray:
    """The view's observations in its ``rank+1``-dim subspace, ``[vectors, rank+1]`` (float64)."""
    rng = np.random.default_rng(
        np.random.SeedSequence([generator.seed, 1, view_index(generator, view)])
    )
    visual = view.modality == "visual"
    counts = latents.frames if visual else latents.audio_vectors
    component = latents.frame_component if visual else latents.audio_component
    evidence = np.repeat(latents.evidence, counts)
    sign_index = np.repeat((latents.signs < 0).astype(int), counts)
    mean = components(generator, latents, view.modality)[1][component, evidence, sign_index]
    return view.gain * mean + view.noise * rng.standard_normal(mean.shape)


def view_index(generator: Generator, view: View) -> int:
    return [v.name for v in generator.views].index(view.name)
