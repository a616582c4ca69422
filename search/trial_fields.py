"""What a search knows of a trial's settings: the trial config class (``trainables.config``), its
defaults, and the keys a search config may not use as trial fields.

The bottom of ``search``'s config layer: ``search.config`` validates a YAML's ``space`` and
``trial`` sections against these, ``search.space`` samples them. Only ``trainables.config`` is
imported, never the ``trainables`` package's own names, so checking a search YAML costs no more
than that module does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The store variants a trial reads: sampled from ``stores.*``, never a ``space``/``trial`` key.
FEATURE_KEYS = ("visual_feature", "audio_feature")
# The trial's number in its search (Optuna's, added to each sampled config by ``search.adapter``):
# its id in run names, progress lines, the leaderboard and the ``avfusion.trial_id`` tag.
TRIAL_NUMBER = "trial_number"
# Trial fields the search sets itself: epochs comes from the budget, the seed from the search seed.
RESERVED_TRIAL_FIELDS = ("epochs", "seed")


def trial_config_class() -> type:
    """``trainables.config.TrialConfig``, imported on first use."""
    from trainables.config import TrialConfig

    return TrialConfig


def trial_defaults() -> dict[str, Any]:
    """Every trial field that has a default, with it."""
    fields = trial_config_class().model_fields
    return {name: field.default for name, field in fields.items() if not field.is_required()}


def trial_number_text(config: Mapping[str, Any], tune_trial_id: str) -> str:
    """A trial's id as a person reads it: its number in the search (``TRIAL_NUMBER``), or Tune's
    id for a trial whose config has none (one restored from a search started before numbers)."""
    number = config.get(TRIAL_NUMBER)
    return tune_trial_id if number is None else str(number)
