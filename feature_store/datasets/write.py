"""Write a listing as the project's manifest: ``clip_id,path,split,label,fold,speaker`` and, beside
it, ``MANIFEST.yaml`` (``feature_store.manifest_spec``); and the summary a researcher reads.

An existing manifest is replaced only with ``--force``, and ``--force`` replaces only what this
command writes (a CSV whose header starts with ``clip_id`` and a YAML mapping with ``classes``),
as ``avcore.outdir`` does for folders. The CSV is staged beside its final name and renamed into
place after the YAML is written, so a failed run leaves no half-written manifest.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

from avcore.guards import GuardError, check_writable
from feature_store.datasets.common import MISSING, Clip, DatasetError, Listing
from feature_store.manifest_spec import ManifestSpec, spec_path, write_spec

HEADER = ("clip_id", "path", "split", "label", "fold", "speaker")


def check_out(out: Path, *, force: bool) -> None:
    """Refuse, before the tree is read, an ``--out`` that is not a ``.csv`` file name, one that
    exists without ``--force``, and one ``--force`` may not replace."""
    if out.suffix.lower() != ".csv":
        raise GuardError(f"--out {out}: a manifest is a .csv file (its spec goes beside it, .yaml)")
    for path, ours in ((out, _is_manifest), (spec_path(out), _is_spec)):
        if not (path.exists() or path.is_symlink()):
            continue
        if not force:
            raise GuardError(f"--out {out}: {path} exists; pass --force to replace it")
        if path.is_symlink() or not path.is_file() or not ours(path):
            raise GuardError(
                f"--out {out}: {path} is not a manifest this command wrote; --force replaces only "
                "those (choose another --out)"
            )
    check_writable(out)


def _is_manifest(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        return handle.readline().strip().startswith("clip_id")


def _is_spec(path: Path) -> bool:
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except yaml.YAMLError:
        return False
    return isinstance(raw, dict) and "classes" in raw


def manifest_path(clip: Path, folder: Path) -> str:
    """The clip's path relative to the manifest's folder when it lies below it, else absolute."""
    absolute = os.path.abspath(clip)
    base = os.path.abspath(folder)
    if os.path.commonpath([absolute, base]) == base:
        return Path(os.path.relpath(absolute, base)).as_posix()
    return absolute


def write_manifest(out: Path, clips: list[Clip], spec: ManifestSpec) -> None:
    """The CSV (staged, renamed into place last) and its YAML."""
    if not clips:
        raise DatasetError(f"--out {out}: no clips to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        with open(staging, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(HEADER)
            for clip in clips:
                fold = str(clip.fold) if clip.fold else ""
                path = manifest_path(clip.path, out.parent)
                writer.writerow((clip.clip_id, path, clip.split, clip.label, fold, clip.speaker))
        write_spec(out, spec)
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)


def summary(out: Path, listing: Listing, spec: ManifestSpec) -> str:
    """Clips per split (fixed) or fold, by class; the speakers of each fold; what was left out."""
    clips = listing.clips
    protocol = spec.protocol
    if protocol.has_folds:
        title = f"{protocol.kind} protocol, {protocol.folds} folds"
        if protocol.seed is not None:
            title += f", seed {protocol.seed}"
        groups = [
            (f"fold {k}", [c for c in clips if c.fold == k]) for k in range(1, protocol.folds + 1)
        ]
    else:
        title = "fixed protocol"
        order = ("train", "val", "test")
        groups = [
            (s, [c for c in clips if c.split == s])
            for s in order
            if any(c.split == s for c in clips)
        ]
    lines = [
        f"{out}: {spec.dataset}, {len(clips)} clips ({title}); classes and protocol in "
        f"{spec_path(out).name}"
    ]
    columns = list(spec.classes)
    if any(not c.label for c in clips):
        columns.append("(unlabelled)")
    columns.append("total")
    rows = []
    for name, members in groups:
        counts = Counter(c.label or "(unlabelled)" for c in members)
        rows.append([name, *(str(counts[col]) for col in columns[:-1]), str(len(members))])
    if len(groups) > 1:
        counts = Counter(c.label or "(unlabelled)" for c in clips)
        rows.append(["all", *(str(counts[col]) for col in columns[:-1]), str(len(clips))])
    widths = [max(len(r[0]) for r in rows)] + [
        max(len(col), *(len(r[i + 1]) for r in rows)) for i, col in enumerate(columns)
    ]
    lines.append("  " + "  ".join(t.rjust(w) for t, w in zip(["", *columns], widths)))
    lines += ["  " + "  ".join(t.rjust(w) for t, w in zip(r, widths)) for r in rows]
    if protocol.kind == "speakers":
        for k in range(1, protocol.folds + 1):
            speakers = sorted({c.speaker for c in clips if c.fold == k})
            lines.append(f"  fold {k} speakers: {', '.join(speakers)}")
    if listing.excluded:
        for reason, count in sorted(listing.excluded.items()):
            first = f" (first: {listing.first_missing})" if reason == MISSING else ""
            lines.append(f"  excluded {count}: {reason}{first}")
    else:
        lines.append("  excluded: none")
    return "\n".join(lines)
