"""The planted benchmark: AFEW-shaped feature stores whose best possible accuracy is known exactly.

    python -m feature_store synth --out data/demo [--scale 1] [--seed 0]

writes ``data/demo/visual/<variant>/`` (basic, f-mean, f-meanstd, f-normfft, f-ar-mean) and
``data/demo/audio/<variant>/`` (spectrogram, logmel), plus ``data/demo/planted.json``.

The generative model (every clip draws its latents once; every variant observes them):

1. the label ``y`` from AFEW's class proportions; the *evidence class* the clip actually shows,
   equal to ``y`` with probability ``label_agreement`` and otherwise any other class (AFEW's
   labels are ambiguous too: this caps every accuracy); a sign ``s`` = ±1 (fair coin); a number
   of face frames (a few clips have none) and of audio vectors;
2. a frame is *informative* with probability ``frame_rate``: its mean is
   ``fixed_e + s · flip_e`` plus a salience marker. Otherwise it is a *distractor* showing a random
   class's fixed pattern without the marker: mean pooling mixes them in, attention can skip them;
3. the meaning of the ``flip`` part of the visual evidence flips with ``s``, and ``s`` is carried
   by every audio vector (``s · κ · u``), so that part is only usable by multiplying audio and
   visual (FBP), not by concatenating them;
4. an informative audio vector adds ``η_e`` and a marker to the sign carrier;
5. a *view* observes the latent means in an ``r``-dim subspace of its own block of ``block_dim``
   columns, with its own gain and isotropic Gaussian noise (weaker noise outside the subspace).
   Variants are lists of views that share their noise where the paper's features share a part:
   ``f-meanstd`` = [f-mean's view, a std view], ``f-ar-mean`` = [f-mean's view, a second
   backbone's f-mean view]. The names mimic the information the paper's enhancements carry
   (F-MeanStd > F-Mean > basic), not their arithmetic.

Because the noise is Gaussian and uncorrelated across the subspace and its complement, the
projection of a block onto its subspace is a sufficient statistic, and the exact posterior
``p(y | visual, audio)`` is a sum over the evidence class and ``s`` of products over vectors of
small mixtures: the Bayes-optimal (oracle) accuracy of each variant alone and of
each visual × audio pair is computed from it and stored in ``store.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from avcore.afew import CLASSES, TRAIN_COUNTS
from feature_store.errors import StoreError, StoreExistsError
from feature_store.store import META_FILE, SPLITS, StoreWriter

AFEW_SPLIT_SIZES = {"train": 773, "val": 383, "test": 653}
SIGNS = (1.0, -1.0)


@dataclass(frozen=True)
class View:
    """One noisy observation of the latent means in a block of ``block_dim`` columns."""

    name: str
    modality: str
    gain: float
    noise: float


@dataclass(frozen=True)
class Generator:
    """Every parameter of the planted model; recorded in ``store.json``."""

    seed: int = 0
    scale: float = 1.0
    rank: int = 8
    block_dim: int = 512
    audio_dim: int = 256
    min_frames: int = 3
    max_frames: int = 20
    empty_visual_rate: float = 0.01
    audio_grid: tuple[int, int] = (2, 4)
    max_segments: int = 4
    frame_rate: float = 0.35
    audio_rate: float = 0.3
    fixed_strength: float = 1.5
    flip_strength: float = 3.0
    marker: float = 2.5
    class_strength: tuple[float, ...] = (1.0, 0.75, 0.75, 1.1, 0.9, 0.9, 1.0)
    sign_strength: float = 1.5
    audio_strength: float = 1.0
    audio_marker: float = 1.5
    distractor: float = 1.5
    label_agreement: float = 0.75
    # Noise outside a view's subspace, relative to the view's noise. It changes no likelihood ratio
    # (so no oracle figure) but sets how hard the subspace is to find from 773 training clips.
    complement_noise: float = 0.25
    views: tuple[View, ...] = field(
        default=(
            View("basic", "visual", 1.0, 1.0),
            View("mean", "visual", 1.0, 0.8),
            View("std", "visual", 0.9, 1.0),
            View("fft", "visual", 1.0, 1.05),
            View("mean-b", "visual", 0.8, 1.1),
            View("spectrogram", "audio", 1.0, 1.0),
            View("logmel", "audio", 1.0, 0.85),
        )
    )
    variants: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "visual/basic": ("basic",),
            "visual/f-mean": ("mean",),
            "visual/f-meanstd": ("mean", "std"),
            "visual/f-normfft": ("fft",),
            "visual/f-ar-mean": ("mean", "mean-b"),
            "audio/spectrogram": ("spectrogram",),
            "audio/logmel": ("logmel",),
        }
    )

    def view(self, name: str) -> View:
        return next(v for v in self.views if v.name == name)

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


@dataclass
class Latents:
    """What every clip drew once; all variants observe these."""

    clip_ids: list[str]
    splits: np.ndarray  # [N] str
    labels: np.ndarray  # [N] int
    signs: np.ndarray  # [N] ±1
    frames: np.ndarray  # [N] visual vectors per clip
    audio_vectors: np.ndarray  # [N] audio vectors per clip
    evidence: np.ndarray  # [N] the class the clip's evidence shows (= label but for label noise)
    frame_component: np.ndarray  # [sum(frames)] 0 = informative, 1..7 = distractor of class z
    audio_component: np.ndarray  # [sum(audio_vectors)] 0 = informative, 1 = sign carrier only
    fixed: np.ndarray  # [7, rank] visual evidence that keeps its meaning
    flip: np.ndarray  # [7, rank] visual evidence whose meaning flips with the sign
    audio_class: np.ndarray  # [7, rank] audio class evidence
    sign_direction: np.ndarray  # [rank] carries the sign in every audio vector


def split_labels(generator: Generator, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Splits and labels: AFEW's split sizes times ``scale``, AFEW's train class proportions."""
    proportions = np.asarray(TRAIN_COUNTS, float) / sum(TRAIN_COUNTS)
    splits, labels = [], []
    for split in SPLITS:
        size = max(len(CLASSES), int(round(AFEW_SPLIT_SIZES[split] * generator.scale)))
        counts = np.floor(proportions * size).astype(int)
        # Largest remainders get the clips rounding left over, so the split has exactly `size`.
        remainder = np.argsort(-(proportions * size - counts), kind="stable")[: size - counts.sum()]
        counts[remainder] += 1
        split_labels_ = np.repeat(np.arange(len(CLASSES)), counts)
        rng.shuffle(split_labels_)
        splits += [split] * size
        labels.append(split_labels_)
    return np.asarray(splits), np.concatenate(labels)


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((rows, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def draw_latents(generator: Generator) -> Latents:
    rng = np.random.default_rng(np.random.SeedSequence([generator.seed, 0]))
    splits, labels = split_labels(generator, rng)
    n = len(labels)
    strength = np.asarray(generator.class_strength)[:, None]
    fixed = _unit_rows(rng, len(CLASSES), generator.rank) * strength * generator.fixed_strength
    flip = _unit_rows(rng, len(CLASSES), generator.rank) * strength * generator.flip_strength
    audio_class = (
        _unit_rows(rng, len(CLASSES), generator.rank) * strength * generator.audio_strength
    )
    sign_direction = _unit_rows(rng, 1, generator.rank)[0] * generator.sign_strength
    signs = rng.choice(SIGNS, size=n)
    frames = rng.integers(generator.min_frames, generator.max_frames + 1, size=n)
    frames[rng.random(n) < generator.empty_visual_rate] = 0
    per_segment = generator.audio_grid[0] * generator.audio_grid[1]
    audio_vectors = rng.integers(1, generator.max_segments + 1, size=n) * per_segment
    noise = label_noise_matrix(generator)
    evidence = np.array([rng.choice(len(CLASSES), p=noise[label]) for label in labels])
    counters = {split: 0 for split in SPLITS}
    clip_ids = []
    for split in splits:
        clip_ids.append(f"{split}-{counters[split]:05d}")
        counters[split] += 1
    return Latents(
        clip_ids=clip_ids,
        splits=splits,
        labels=labels,
        signs=signs,
        frames=frames,
        audio_vectors=audio_vectors,
        evidence=evidence,
        frame_component=np.where(
            rng.random(frames.sum()) < generator.frame_rate,
            0,
            rng.integers(1, len(CLASSES) + 1, size=frames.sum()),
        ),
        audio_component=(rng.random(audio_vectors.sum()) >= generator.audio_rate).astype(int),
        fixed=fixed,
        flip=flip,
        audio_class=audio_class,
        sign_direction=sign_direction,
    )


def label_noise_matrix(generator: Generator) -> np.ndarray:
    """``[7, 7]``: p(evidence class | label): the label with probability ``label_agreement``, else
    any other class uniformly (AFEW's labels are ambiguous too)."""
    k = len(CLASSES)
    other = (1.0 - generator.label_agreement) / (k - 1)
    return np.full((k, k), other) + np.eye(k) * (generator.label_agreement - other)


def components(
    generator: Generator, latents: Latents, modality: str
) -> tuple[np.ndarray, np.ndarray]:
    """The mixture a vector of this modality is drawn from: log weights ``[C]`` and means
    ``[C, 7, 2, rank+1]`` per evidence class and sign (the last coordinate is the salience marker).

    visual: 0 = informative (``fixed_y + s·flip_y`` + marker), 1..7 = a distractor frame showing
    class z's fixed pattern weakly, without the marker (z uniform, independent of the clip);
    audio: 0 = informative (``s·κ·u + η_y`` + marker), 1 = ``s·κ·u`` alone.
    """
    k, rank = len(CLASSES), generator.rank
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
        np.random.SeedSequence([generator.seed, 1, _view_index(generator, view)])
    )
    visual = view.modality == "visual"
    counts = latents.frames if visual else latents.audio_vectors
    component = latents.frame_component if visual else latents.audio_component
    evidence = np.repeat(latents.evidence, counts)
    sign_index = np.repeat((latents.signs < 0).astype(int), counts)
    mean = components(generator, latents, view.modality)[1][component, evidence, sign_index]
    return view.gain * mean + view.noise * rng.standard_normal(mean.shape)


def _view_index(generator: Generator, view: View) -> int:
    return [v.name for v in generator.views].index(view.name)


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


def view_embedding(generator: Generator, view: View, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The view's orthonormal basis ``[dim, rank+1]`` and its fixed bias ``[dim]``."""
    rng = np.random.default_rng(
        np.random.SeedSequence([generator.seed, 2, _view_index(generator, view)])
    )
    basis, _ = np.linalg.qr(rng.standard_normal((dim, generator.rank + 1)))
    return basis, rng.normal(0.0, 0.5, size=dim)


def embed(generator: Generator, view: View, obs: np.ndarray, dim: int) -> np.ndarray:
    """Place a view's subspace observations into ``dim`` columns: a random orthonormal basis, noise
    in the orthogonal complement (``complement_noise`` × the view's level), and a fixed bias so the
    vectors look like a backbone's (nonzero mean); neither changes a likelihood ratio."""
    basis, bias = view_embedding(generator, view, dim)
    rng = np.random.default_rng(
        np.random.SeedSequence([generator.seed, 3, _view_index(generator, view)])
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
        if existing != params:
            raise StoreExistsError(
                f"{out / name}: holds a planted store made with other parameters; use --force to replace it"
            )
    if not todo and (out / "planted.json").is_file():
        return load_planted(out)
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
    bar = tqdm(
        [(n, generator.variants[n]) for n in todo],
        desc="planted stores",
        unit="store",
        disable=not progress,
    )
    for name, views in bar:
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
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "planted.json.tmp"
    tmp.write_text(json.dumps(table, indent=2))
    os.replace(tmp, out / "planted.json")
    return table


def _write_variant(
    path: Path,
    features: np.ndarray,
    counts: np.ndarray,
    informative: np.ndarray,
    latents: Latents,
    *,
    name: str,
    modality: str,
    enhancement: str,
    planted: dict[str, Any],
    force: bool,
) -> None:
    starts = np.concatenate([[0], np.cumsum(counts)])
    with StoreWriter(
        path,
        name=name,
        modality=modality,
        dim=features.shape[1],
        backbone="planted",
        pretrain="none",
        enhancement=enhancement,
        extra={"planted": planted},
        force=force,
    ) as writer:
        for i, clip_id in enumerate(latents.clip_ids):
            rows = slice(starts[i], starts[i + 1])
            writer.add(
                clip_id,
                str(latents.splits[i]),
                int(latents.labels[i]) if latents.splits[i] != "test" else -1,
                features[rows],
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
    """Not part of any store (test labels are hidden there): the planted test labels, for scoring
    submissions against the oracle. Recomputed from the generator parameters in ``planted.json``."""
    generator = generator_from_dict(load_planted(root)["generator"])
    latents = draw_latents(generator)
    in_test = latents.splits == "test"
    return pd.DataFrame(
        {"clip_id": np.asarray(latents.clip_ids)[in_test], "label": latents.labels[in_test]}
    )


def generator_from_dict(params: dict[str, Any]) -> Generator:
    params = dict(params)
    params["views"] = tuple(View(**v) for v in params["views"])
    params["variants"] = {k: tuple(v) for k, v in params["variants"].items()}
    params["audio_grid"] = tuple(params["audio_grid"])
    params["class_strength"] = tuple(params["class_strength"])
    return Generator(**params)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, help="folder to write visual/<variant>/ and audio/<variant>/ into"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="clips per split = AFEW's (773/383/653) × scale"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the generator's seed (same seed, same stores)"
    )
    parser.add_argument(
        "--max-frames", type=int, default=Generator.max_frames, help="most face frames per clip"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace planted stores already in --out"
    )
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="do nothing when --out already holds these stores (same parameters)",
    )


def run(args: argparse.Namespace) -> int:
    if args.scale <= 0:
        raise StoreError(f"--scale must be positive, got {args.scale}")
    if args.max_frames < Generator.min_frames:
        raise StoreError(
            f"--max-frames must be at least {Generator.min_frames}, got {args.max_frames}"
        )
    generator = Generator(seed=args.seed, scale=args.scale, max_frames=args.max_frames)
    table = generate(args.out, generator, force=args.force, skip_existing=args.skip_existing)
    print(format_table(table))
    return 0


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
