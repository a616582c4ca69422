"""The manifest CSV: parsing, path resolution, and one clear error per kind of bad row."""

from __future__ import annotations

from pathlib import Path

import pytest

from feature_store.manifest import ManifestError, read_manifest


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text(text)
    return path


def test_reads_labels_case_insensitively_and_resolves_paths(tmp_path):
    path = write(
        tmp_path,
        "clip_id,path,split,label\n"
        "a,videos/a.avi,train,happy\n"
        "b,/data/b.avi,val,SAD\n"
        "c,c.avi,test,\n"
        "d,d.avi,Test,Neutral\n",
    )
    clips = read_manifest(path)
    assert clips["clip_id"].tolist() == ["a", "b", "c", "d"]
    assert clips["label"].tolist() == [3, 5, -1, 4]
    assert clips["split"].tolist() == ["train", "val", "test", "test"]
    assert clips["path"].tolist() == [
        str(tmp_path.resolve() / "videos/a.avi"),
        "/data/b.avi",
        str(tmp_path.resolve() / "c.avi"),
        str(tmp_path.resolve() / "d.avi"),
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("clip_id,path,label\na,a.avi,Happy\n", r"manifest.csv:1: missing column\(s\) \['split'\]"),
        ("clip_id,path,split,label\na,a.avi,train,Happy\na,b.avi,val,Sad\n", r":3: duplicate clip id 'a' \(first on line 2\)"),
        ("clip_id,path,split,label\na,a.avi,train,Contempt\n", r":2: clip 'a' has unknown label 'Contempt'; expected one of Angry"),
        ("clip_id,path,split,label\na,a.avi,dev,Happy\n", r":2: clip 'a' has split 'dev'; expected one of train, val, test"),
        ("clip_id,path,split,label\na,a.avi,train,\n", r":2: clip 'a' is in train but has no label"),
        ("clip_id,path,split,label\na,,train,Happy\n", r":2: clip 'a' has an empty path"),
        ("clip_id,path,split,label\n", r"no clips listed"),
        ("clip_id,path,split,label\na,a.avi,train,Happy,extra\n", r":2: more fields"),
    ],
)  # fmt: skip
def test_bad_manifests_name_file_and_line(tmp_path, text, expected):
    with pytest.raises(ManifestError, match=expected) as info:
        read_manifest(write(tmp_path, text))
    assert "manifest.csv" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest file"):
        read_manifest(tmp_path / "nope.csv")
