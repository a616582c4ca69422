"""The planted benchmark: feature stores shaped like a dataset (AFEW by default) whose best
possible accuracy is known exactly.

    python -m feature_store synth --out data/demo [--dataset afew] [--scale 1] [--seed 0]

writes ``data/demo/visual/<variant>/`` (basic, f-mean, f-meanstd, f-normfft, f-ar-mean) and
``data/demo/audio/<variant>/`` (spectrogram, logmel), plus ``data/demo/planted.json``. The
dataset (``avcore.datasets``: afew, and the others registered there) gives the K classes, their
frequencies, the clip counts and the protocol (``shape``): fixed splits as AFEW's, or every clip
in ``train`` with a stratified ``fold`` column (and ``speaker``) for fold protocols.

The generative model (every clip draws its latents once; every variant observes them):

1. the label ``y`` from the dataset's class proportions; the *evidence class* the clip actually
   shows, equal to ``y`` with probability ``label_agreement`` and otherwise any other class
   (AFEW's labels are ambiguous too: this caps every accuracy); a sign ``s`` = ±1 (fair coin); a number
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

The package's jobs: ``params`` (the generator's parameters), ``latents`` (the draws), ``oracle``
(the exact posterior and oracle accuracies, per fold for fold protocols), ``shape`` (the
dataset's classes, splits, folds and speakers), ``write`` (the stores and ``planted.json``), ``cli``
(the ``synth`` command). Its public names are importable from ``feature_store.synthetic``,
loaded on first use (PEP 562) so ``synth --help`` needs no numpy.
"""

from __future__ import annotations

from typing import Any

_HOMES = {
    "params": ("SIGNS", "Generator", "View", "generator_from_dict"),
    "shape": (
        "assign_folds",
        "dataset_profile",
        "labels_test",
        "num_classes",
        "protocol",
        "split_labels",
    ),
    "latents": ("Latents", "components", "draw_latents", "label_noise_matrix", "observe"),
    "oracle": (
        "class_prior",
        "clip_log_likelihoods",
        "describe",
        "format_table",
        "oracle_accuracy",
        "posterior",
    ),
    "write": ("embed", "generate", "hidden_test_labels", "load_planted", "view_embedding"),
}
__all__ = sorted(name for names in _HOMES.values() for name in names)


def __getattr__(name: str) -> Any:
    if name in _HOMES["params"]:
        from feature_store.synthetic import params as home
    elif name in _HOMES["shape"]:
        from feature_store.synthetic import shape as home
    elif name in _HOMES["latents"]:
        from feature_store.synthetic import latents as home
    elif name in _HOMES["oracle"]:
        from feature_store.synthetic import oracle as home
    elif name in _HOMES["write"]:
        from feature_store.synthetic import write as home
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(home, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
