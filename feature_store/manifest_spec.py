"""``MANIFEST.yaml``, written beside a manifest CSV: what the CSV's labels and folds mean.

It names the dataset, its ordered classes (the dataset's own label order: a label's index in
this list is the class index every store, score array and submission column follows), the
evaluation protocol (``avcore.datasets.ProtocolSpec``), and what the manifest writer left out
and why (counted, never silently dropped)::

    dataset: mafw
    classes: [anger, disgust, fear, happiness, neutral, sadness, surprise, contempt, anxiety,
              helplessness, disappointment]
    protocol: {kind: folds, folds: 5}
    excluded: {multi-label: 873}
    source: "MAFW README: Train & Test Set/single/no_caption/set_{1..5}/{train,test}.txt"

``feature_store build --manifest M.csv`` reads ``M.yaml`` when it is there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from avcore import guards
from avcore.datasets import ProtocolSpec
from avcore.errors import UserError
from feature_store.errors import StoreError

KEYS = ("dataset", "classes", "protocol", "excluded", "source")


class ManifestSpecError(StoreError):
    """``MANIFEST.yaml`` is malformed: one line naming the file and the key."""


@dataclass(frozen=True)
class ManifestSpec:
    dataset: str
    classes: tuple[str, ...]
    protocol: ProtocolSpec = ProtocolSpec()
    excluded: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "classes": list(self.classes),
            "protocol": self.protocol.as_dict(),
            "excluded": dict(self.excluded),
            "source": self.source,
        }


def spec_path(manifest: str | os.PathLike[str]) -> Path:
    """``data/x/manifest.csv`` -> ``data/x/manifest.yaml``."""
    return Path(manifest).with_suffix(".yaml")


def write_spec(manifest: str | os.PathLike[str], spec: ManifestSpec) -> Path:
    path = spec_path(manifest)
    path.write_text(yaml.safe_dump(spec.as_dict(), sort_keys=False, allow_unicode=True))
    return path


def read_spec(manifest: str | os.PathLike[str]) -> ManifestSpec | None:
    """The spec beside ``manifest``, or None when there is none."""
    path = spec_path(manifest)
    if not path.is_file():
        return None
    raw = guards.read_yaml(path, "manifest spec", error=ManifestSpecError)
    if not isinstance(raw, dict):
        raise ManifestSpecError(f"{path}: expected a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ManifestSpecError(f"{path}: unknown key {unknown[0]!r}; known: {', '.join(KEYS)}")
    classes = raw.get("classes")
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(name, str) and name.strip() for name in classes)
    ):
        raise ManifestSpecError(f"{path}: classes must be a list of at least two names")
    if len({name.lower() for name in classes}) != len(classes):
        raise ManifestSpecError(f"{path}: classes must be distinct (case-insensitive): {classes}")
    excluded = raw.get("excluded") or {}
    if not isinstance(excluded, dict) or not all(
        isinstance(count, int) for count in excluded.values()
    ):
        raise ManifestSpecError(f"{path}: excluded must map a reason to a clip count")
    try:
        protocol = ProtocolSpec.from_dict(raw.get("protocol"), where=str(path))
    except UserError as exc:
        raise ManifestSpecError(str(exc)) from None
    return ManifestSpec(
        dataset=str(raw.get("dataset") or "custom"),
        classes=tuple(name.strip() for name in classes),
        protocol=protocol,
        excluded={str(k): int(v) for k, v in excluded.items()},
        source=str(raw.get("source") or ""),
    )
