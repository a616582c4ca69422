"""The emotion datasets avfusion reads, as profiles: ordered classes (the dataset's own label
order), the evaluation protocol, and the class frequencies and clip counts the planted benchmark
copies. A store records its classes and protocol (``store.json``); everything downstream reads
them from there, so these profiles matter only where data enters (``feature_store manifest``,
``feature_store synth``) and as AFEW's default for manifests and scores written before classes
were recorded.

Protocols (``ProtocolSpec.kind``):

- ``fixed``: the dataset's own splits (AFEW: train/val/test with unlabelled test; MELD:
  train/dev/test, dev read as val);
- ``folds``: the dataset's official k folds (DFEW, MAFW): fold k's test is fold k, and a search
  selects on a validation part carved from the other folds' clips;
- ``speakers``: speaker-independent folds (RAVDESS, CREMA-D): no actor in two folds, drawn with a
  recorded seed when the manifest is written.

    >>> from avcore.datasets import profile
    >>> profile("mafw").classes[:3]
    ('anger', 'disgust', 'fear')
"""

from __future__ import annotations

from dataclasses import dataclass, field

from avcore import afew
from avcore.errors import UserError

PROTOCOL_KINDS = ("fixed", "folds", "speakers")


@dataclass(frozen=True)
class ProtocolSpec:
    """How a dataset is evaluated: its kind, how many folds (0 for ``fixed``) and, for speaker
    folds, the seed their assignment was drawn with."""

    kind: str = "fixed"
    folds: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROTOCOL_KINDS:
            raise UserError(f"protocol kind {self.kind!r}: expected one of {PROTOCOL_KINDS}")
        if self.kind == "fixed" and self.folds:
            raise UserError("a fixed protocol has no folds")
        if self.kind != "fixed" and self.folds < 2:
            raise UserError(f"a {self.kind} protocol needs at least 2 folds, got {self.folds}")

    @property
    def has_folds(self) -> bool:
        return self.kind != "fixed"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "folds": self.folds}
        if self.seed is not None:
            out["seed"] = self.seed
        return out

    @classmethod
    def from_dict(cls, raw: object, *, where: str) -> ProtocolSpec:
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"kind", "folds", "seed"}:
            raise UserError(f"{where}: protocol must be a mapping of kind, folds (and seed)")
        try:
            return cls(str(raw.get("kind", "fixed")), int(raw.get("folds", 0)), raw.get("seed"))
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: protocol: {exc}") from None


@dataclass(frozen=True)
class DatasetProfile:
    """One dataset as distributed: its classes in label order, its protocol, and its size."""

    name: str
    classes: tuple[str, ...]
    protocol: ProtocolSpec
    # Clips per class of the labelled set the protocol uses (the train split for ``fixed``).
    class_counts: tuple[int, ...]
    # Clips per split (``fixed``) or in all folds together (key ``all``).
    sizes: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        assert len(self.class_counts) == len(self.classes), self.name


AFEW = DatasetProfile(
    name="afew",
    classes=afew.CLASSES,
    protocol=ProtocolSpec("fixed"),
    class_counts=afew.TRAIN_COUNTS,
    sizes={"train": 773, "val": 383, "test": 653},
    source="Dhall et al., EmotiW 2019 (AFEW 7.0): Train_AFEW/, Val_AFEW/, Test_AFEW/",
)

PROFILES: dict[str, DatasetProfile] = {AFEW.name: AFEW}


def register(profile_: DatasetProfile) -> DatasetProfile:
    PROFILES[profile_.name] = profile_
    return profile_


def profile(name: str) -> DatasetProfile:
    """The profile called ``name`` (``crema-d`` and ``cremad`` alike); one line when unknown."""
    key = name.strip().lower().replace("_", "-")
    key = {"cremad": "crema-d"}.get(key, key)
    if key not in PROFILES:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[key]


def class_index(classes: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Case-insensitive name -> index of an ordered class list."""
    return {name.lower(): index for index, name in enumerate(classes)}


def default_classes() -> tuple[str, ...]:
    """The class set assumed where none is recorded (manifests without a YAML, old scores)."""
    return AFEW.classes


def default_train_counts(classes: tuple[str, ...] | list[str]) -> tuple[int, ...] | None:
    """AFEW's train counts when ``classes`` are AFEW's, else None (nothing to assume)."""
    return AFEW.class_counts if tuple(classes) == AFEW.classes else None
