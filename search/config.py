"""The search definition: one typed model for every ``conf/search/*.yaml``.

    from search.config import load_search_config
    config = load_search_config("conf/search/demo.yaml", overrides=["budget.num_trials=4"])

Validated on load: an unknown key, a value out of range, a space entry that no trial could take,
a store variant with no store on disk each raise ``SearchConfigError`` with one line naming the
file and the key. ``--set key=value`` overrides use dotted keys and YAML values
(``--set stores.visual_feature=[basic]``); ``--smoke-test`` shrinks the budget (``SMOKE_TEST``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    ValidationError,
    model_validator,
)

from avcore import guards
from avcore.parsing import pydantic_line
from avcore.tracking import DEFAULT_URI
from search.data_config import PublishedFigure, StoresConfig, Strict
from search.errors import SearchConfigError
from search.overrides import SMOKE_TEST, apply_overrides
from search.start_points import check_start_grid, check_start_points
from search.trial_fields import FEATURE_KEYS, RESERVED_TRIAL_FIELDS, trial_config_class
from trainables.config import RENAMED_KEYS


class Range(Strict):
    """A numeric interval sampled by Optuna: integers when both ends are integers."""

    low: int | float = Field(description="smallest value")
    high: int | float = Field(description="largest value")
    log: bool = Field(False, description="sample on a log scale (learning rate, weight decay)")
    step: int | float | None = Field(None, description="grid step; null for a continuous range")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a log range cannot also have a step")
        return self

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)


ParamSpec = Range | list[Any]


class BudgetConfig(Strict):
    """How many trials, how long, and how ASHA cuts the weak ones."""

    num_trials: int = Field(ge=1, description="trials Optuna proposes in total")
    max_concurrent: int = Field(2, ge=1, description="trials running at the same time")
    epochs: int = Field(ge=1, description="epochs of a trial that is not stopped early")
    grace_period: int = Field(
        1, ge=1, description="ASHA: epochs every trial gets before it can be stopped"
    )
    reduction_factor: float = Field(3, gt=1, description="ASHA: keep 1/reduction_factor per rung")
    compare_within: str | None = Field(
        "fusion",
        description="ASHA compares a trial only with trials sharing this sampled parameter "
        "(fusion: FBP's slow start is judged against FBP); null: one ASHA for all trials",
    )
    time_limit_s: float | None = Field(
        None, gt=0, description="wall-clock limit of the whole search"
    )
    max_failures: int = Field(
        1, ge=0, description="retries of a trial that raises, before it counts as failed"
    )
    window: int = Field(
        4,
        ge=1,
        description="mode reproducible: trial n is proposed knowing the results of trials 0 to "
        "n - window and judged by ASHA against them, so at most this many run at once",
    )

    @model_validator(mode="after")
    def _grace_within_epochs(self) -> BudgetConfig:
        if self.grace_period > self.epochs:
            raise ValueError(f"grace_period ({self.grace_period}) exceeds epochs ({self.epochs})")
        return self


class ResourcesConfig(Strict):
    """What one trial asks Ray for."""

    cpus: float = Field(1, gt=0, description="CPUs per trial")
    gpu: float = Field(
        0, ge=0, description="GPUs per trial; a fraction (0.25) lets trials share one GPU"
    )

    @model_validator(mode="after")
    def _gpu_fraction(self) -> ResourcesConfig:
        if self.gpu > 1 and not float(self.gpu).is_integer():
            raise ValueError(f"gpu above 1 must be a whole number, got {self.gpu}")
        return self


class TrackingConfig(Strict):
    """Where MLflow records the search (``MLFLOW_TRACKING_URI`` overrides ``uri``) and where its
    Optuna study lives (``search.study``)."""

    uri: str = Field(DEFAULT_URI, description="MLflow tracking URI")
    experiment: str | None = Field(None, description="experiment name; defaults to the search name")
    optuna_storage: str | None = Field(
        None,
        description="the Optuna study's database URL (README 'The Optuna study'); default: "
        "optuna.db beside a SQLite tracking database, else mlruns/optuna.db",
    )

    @model_validator(mode="after")
    def _no_password(self) -> TrackingConfig:  # the URL is logged with the parent run
        if self.optuna_storage and urlsplit(self.optuna_storage).password:
            raise ValueError("optuna_storage holds a password: use PGPASSWORD or ~/.pgpass")
        return self


class SearchConfig(Strict):
    """One search: stores, space, fixed trial settings, budget, resources, tracking."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="search name (folder and experiment)"
    )
    seed: int = Field(0, ge=0, description="seed of the TPE sampler and of every trial")
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna sampler")
    mode: Literal["reproducible", "async"] = Field(
        "reproducible",
        description="reproducible: the same config and seed give the same trials whatever the "
        "load, max_concurrent and the order trials end in (search.ordered); async: TPE and ASHA "
        "hear of results as trials end (no slot waits, the outcome depends on timing)",
    )
    stores: StoresConfig
    space: dict[str, ParamSpec] = Field(
        description="trial field -> list of choices or {low, high, log}"
    )
    trial: dict[str, Any] = Field(
        default_factory=dict, description="fixed trial fields for every trial"
    )
    start_from: list[dict[str, Any]] = Field(
        default_factory=list,
        description="configurations run first (space keys and store variants; the rest sampled), "
        "e.g. the paper's best; see search.start_points",
    )
    start_grid: list[str] = Field(
        default_factory=list,
        description="categorical keys whose every combination starts one trial, e.g. [fusion, "
        "visual_attention, audio_attention] for every Table 2 cell",
    )
    budget: BudgetConfig
    resources: ResourcesConfig = ResourcesConfig()
    tracking: TrackingConfig = TrackingConfig()
    published: PublishedFigure | None = Field(
        None, description="the best published WAR/UAR to stand beside the report's (optional)"
    )
    storage_path: str = Field(
        "ray_results", description="Ray Tune storage: a folder or an s3:// / gs:// URI"
    )

    @property
    def experiment(self) -> str:
        return self.tracking.experiment or self.name

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or self.tracking.uri

    def flat(self) -> dict[str, Any]:
        """Every setting as dotted scalar keys (the parent run's params)."""
        return _flatten(self.model_dump(mode="json"))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def load_search_config(
    path: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    *,
    smoke_test: bool = False,
    check_stores: bool = True,
) -> SearchConfig:
    """Read, override, validate: ``SearchConfigError`` names the file and the key on any problem."""
    path = Path(path)
    raw = guards.read_yaml(path, "search config", error=SearchConfigError)
    if not isinstance(raw, dict):
        raise SearchConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    if smoke_test:
        raw = apply_overrides(raw, SMOKE_TEST, str(path))
    raw = apply_overrides(raw, overrides, str(path))
    return config_from_dict(raw, source=str(path), check_stores=check_stores)


def config_from_dict(
    raw: dict[str, Any], *, source: str, check_stores: bool = True
) -> SearchConfig:
    try:
        config = SearchConfig.model_validate(raw)
    except ValidationError as exc:
        raise SearchConfigError(pydantic_line(exc, source)) from None
    check_trial_fields(config, source)
    check_start_points(config, source)
    check_start_grid(config, source)
    if check_stores:
        check_store_paths(config, source)
    return config


def check_trial_fields(config: SearchConfig, source: str) -> None:
    """Every space key and fixed trial key is a trial field, and every value a trial accepts."""
    trial_class = trial_config_class()
    fields = set(trial_class.model_fields)
    for section, keys in (("space", config.space), ("trial", config.trial)):
        for key in keys:
            if key in RESERVED_TRIAL_FIELDS:
                where = "budget.epochs" if key == "epochs" else "seed"
                raise SearchConfigError(f"{source}: {section}.{key}: set by the search ({where})")
            if key in FEATURE_KEYS:
                raise SearchConfigError(
                    f"{source}: {section}.{key}: variants belong under stores.{key}"
                )
            if key in RENAMED_KEYS:
                raise SearchConfigError(
                    f"{source}: {section}.{key}: now called {RENAMED_KEYS[key]!r}; rename it"
                )
            if key not in fields:
                raise SearchConfigError(
                    f"{source}: {section}.{key}: unknown trial field; known: {', '.join(sorted(fields))}"
                )
    _check_trial(trial_class, config.trial, source, "trial")
    group = config.budget.compare_within
    if group is not None and group not in fields | set(FEATURE_KEYS):
        raise SearchConfigError(
            f"{source}: budget.compare_within: {group!r} is not a trial field or a feature key"
        )
    for key, spec in config.space.items():
        values = [spec.low, spec.high] if isinstance(spec, Range) else list(spec)
        if isinstance(spec, list) and not spec:
            raise SearchConfigError(f"{source}: space.{key}: needs at least one choice")
        for value in values:
            _check_trial(trial_class, {**config.trial, key: value}, source, f"space.{key}")


def _check_trial(trial_class: type, values: dict[str, Any], source: str, where: str) -> None:
    try:
        trial_class.model_validate(values)
    except ValidationError as exc:
        raise SearchConfigError(
            pydantic_line(exc, f"{source}: {where}: trial field", show_input=True)
        ) from None
    except ValueError as exc:  # the trial's own checks (unknown attention kind, ...)
        raise SearchConfigError(f"{source}: {where}: {exc}") from None


def check_store_paths(config: SearchConfig, source: str) -> None:
    from feature_store.store import META_FILE

    for modality in ("visual", "audio"):
        for variant in getattr(config.stores, f"{modality}_feature"):
            path = config.stores.path(modality, variant)
            if not (path / META_FILE).is_file():
                raise SearchConfigError(
                    f"{source}: stores.{modality}_feature: no {modality} store {variant!r} at {path}"
                )
