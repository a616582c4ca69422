"""Readers of the emotion datasets as their authors distribute them: ``python -m feature_store
manifest DATASET ROOT --out MANIFEST.csv`` turns a dataset's own tree into the project's manifest
(``clip_id,path,split,label,fold,speaker``) and its ``MANIFEST.yaml`` (classes, protocol, what was
left out and why, the layout followed).

One module per dataset, each citing the README or the authors' loader its layout follows; the
classes and protocol come from the dataset's profile (``avcore.datasets``)::

    >>> from feature_store.datasets import reader
    >>> reader("crema-d").profile.protocol.kind
    'speakers'
"""

from __future__ import annotations

from feature_store.datasets import afew, cremad, dfew, mafw, meld, ravdess
from feature_store.datasets.common import DatasetError, Reader

READERS: dict[str, Reader] = {
    module.READER.profile.name: module.READER
    for module in (afew, dfew, mafw, ravdess, cremad, meld)
}
_ALIASES = {"cremad": "crema-d"}


def reader(name: str) -> Reader:
    """The reader called ``name`` (case and ``_``/``-`` aside; ``cremad`` for ``crema-d``); one
    line listing the known ones when there is none."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in READERS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(READERS)}")
    return READERS[key]


__all__ = ["READERS", "DatasetError", "Reader", "reader"]
