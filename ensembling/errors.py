"""The user errors of ``ensembling``: each prints as one line (``python -m ensembling`` exits 2)."""

from __future__ import annotations

from avcore.errors import UserError


class EnsembleError(UserError):
    """Base of every error a user can cause: bad scores, bad class weights, bad tracking setup."""


class ScoresError(EnsembleError):
    """A score source is missing, malformed, holds NaN/Inf or disagrees with the others."""


class ClassWeightError(EnsembleError):
    """An unknown class-weight preset or a vector of the wrong length or sign."""


class TrackingError(EnsembleError):
    """The MLflow tracking store does not answer, or holds no such experiment or run."""


class OutputError(EnsembleError):
    """An output directory that exists already, or an ensemble directory that cannot be read."""
