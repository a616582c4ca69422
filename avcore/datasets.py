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
# How speaker folds are drawn: a seeded shuffle of the sorted ids dealt round robin, or contiguous
# blocks of the sorted ids (as MAE-DFER's and HiCMAE's RAVDESS folds: actors 1-4, 5-8, ...).
ASSIGNMENTS = ("shuffled", "blocks")


@dataclass(frozen=True)
class ProtocolSpec:
    """How a dataset is evaluated: its kind, how many folds (0 for ``fixed``) and, for speaker
    folds, how they were drawn (``assignment``) and the seed of a shuffled draw."""

    kind: str = "fixed"
    folds: int = 0
    seed: int | None = None
    assignment: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROTOCOL_KINDS:
            raise UserError(f"protocol kind {self.kind!r}: expected one of {PROTOCOL_KINDS}")
        if self.kind == "fixed" and self.folds:
            raise UserError("a fixed protocol has no folds")
        if self.kind != "fixed" and self.folds < 2:
            raise UserError(f"a {self.kind} protocol needs at least 2 folds, got {self.folds}")
        if self.assignment is not None and self.assignment not in ASSIGNMENTS:
            raise UserError(
                f"speaker fold assignment {self.assignment!r}: expected one of {ASSIGNMENTS}"
            )

    @property
    def has_folds(self) -> bool:
        return self.kind != "fixed"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "folds": self.folds}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.assignment is not None:
            out["assignment"] = self.assignment
        return out

    @classmethod
    def from_dict(cls, raw: object, *, where: str) -> ProtocolSpec:
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"kind", "folds", "seed", "assignment"}:
            raise UserError(
                f"{where}: protocol must be a mapping of kind, folds (and seed, assignment)"
            )
        try:
            return cls(
                str(raw.get("kind", "fixed")),
                int(raw.get("folds", 0)),
                raw.get("seed"),
                raw.get("assignment"),
            )
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


# The other datasets `feature_store manifest` reads (feature_store/datasets/<name>.py cites each
# layout). Every count below was checked against the file named beside it.

# DFEW release README: labels 1..7 in this order; 11697 single-labelled clips with a face in the 5
# folds (test lists set_1..5: 2341, 2341, 2340, 2339, 2336). Counts: the union of the five test
# lists as MAE-DFER (saved/data/dfew/org/split0k/test.csv) and DFER-CLIP (annotation/DFEW_set_k_
# test.txt) ship them, the two agreeing clip for clip.
DFEW = register(
    DatasetProfile(
        name="dfew",
        classes=("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear"),
        protocol=ProtocolSpec("folds", 5),
        class_counts=(2445, 1894, 2669, 2173, 1469, 145, 902),
        sizes={"all": 11697},
        source="Jiang et al., ACM MM 2020 (DFEW): EmoLabel_DataSplit, 5 official folds",
    )
)

# MAFW's single-expression set, classes in the order of annotation.xlsx's columns and the authors'
# benchmark; 9172 clips in 5 folds (10045 less 873 compound or invalid). Counts: MAE-DFER's
# saved/data/mafw/single/split0k/test.csv, the five folds together.
MAFW = register(
    DatasetProfile(
        name="mafw",
        classes=(
            "anger",
            "disgust",
            "fear",
            "happiness",
            "neutral",
            "sadness",
            "surprise",
            "contempt",
            "anxiety",
            "helplessness",
            "disappointment",
        ),
        protocol=ProtocolSpec("folds", 5),
        class_counts=(1390, 639, 625, 1242, 1138, 1470, 1072, 236, 916, 262, 182),
        sizes={"all": 9172},
        source="Liu et al., ACM MM 2022 (MAFW): Train & Test Set/single/no_caption, 5 folds",
    )
)

# RAVDESS full-AV speech: 24 actors x 60 files (README: neutral at one intensity, 2 statements x
# 2 repetitions = 4 per actor; each other emotion 2 intensities x 2 x 2 = 8 per actor).
# 6 folds of 4 actors, as MAE-DFER's RAVDESS folds.
RAVDESS = register(
    DatasetProfile(
        name="ravdess",
        classes=("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
        protocol=ProtocolSpec("speakers", 6, 0),
        class_counts=(96, 192, 192, 192, 192, 192, 192, 192),
        sizes={"all": 1440},
        source="Livingstone & Russo, PLoS ONE 2018 (RAVDESS), Zenodo 1188976: full-AV speech",
    )
)

# CREMA-D: 7442 clips of 91 actors (VideoFlash/ of the authors' repository, counted per emotion
# code: 1271 each, NEU 1087) less the 4 files its README reports broken (one DIS, one NEU, two SAD).
CREMA_D = register(
    DatasetProfile(
        name="crema-d",
        classes=("Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad"),
        protocol=ProtocolSpec("speakers", 5, 0),
        class_counts=(1271, 1270, 1271, 1271, 1086, 1269),
        sizes={"all": 7438},
        source="Cao et al., IEEE TAC 2014 (CREMA-D): VideoFlash/*.flv, 91 actors",
    )
)

# MELD: classes in the order of MELD's baseline (README "Labelling"); train counts and split sizes
# from the README's "Dataset Distribution" table, equal to the rows of {train,dev,test}_sent_emo.csv.
MELD = register(
    DatasetProfile(
        name="meld",
        classes=("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
        protocol=ProtocolSpec("fixed"),
        class_counts=(4710, 1205, 268, 683, 1743, 271, 1109),
        sizes={"train": 9989, "val": 1109, "test": 2610},
        source="Poria et al., ACL 2019 (MELD): train/dev/test_sent_emo.csv, MELD.Raw videos",
    )
)


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
