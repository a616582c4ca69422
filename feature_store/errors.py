"""User-facing errors of the feature_store package.

Every error a user can cause (a bad path, a corrupt file, stores that do not pair, a bad manifest)
is a ``StoreError``: the CLI prints its message as one line and exits with status 2.
"""

from __future__ import annotations

from avcore.errors import UserError


class StoreError(UserError):
    """A problem with user input that the CLI reports as one clear line."""


class NotAStoreError(StoreError):
    """The path holds no feature store."""


class CorruptStoreError(StoreError):
    """The store exists but one of its files is inconsistent, truncated or altered."""


class StoreExistsError(StoreError):
    """The output directory already holds a store and ``force`` was not given."""


class PairError(StoreError):
    """A visual and an audio store do not describe the same clips."""
