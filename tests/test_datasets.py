"""``python -m feature_store manifest``: every dataset read from a small tree in its real layout
(real media files, written once with PyAV and hard-linked under the dataset's names), the manifest
and MANIFEST.yaml it writes, read back through ``read_manifest``; speaker folds, seeds, bad rows,
unknown datasets and ``--force``."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from feature_store.__main__ import main
from feature_store.datasets import READERS
from feature_store.manifest import read_manifest


def _video(path: Path, codec: str) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            image = np.full((48, 64, 3), i * 40, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    found = {ext: _video(folder / f"clip.{ext}", codec) for ext, codec in
             (("mp4", "mpeg4"), ("avi", "mpeg4"), ("flv", "flv"))}  # fmt: skip
    with av.open(str(folder / "clip.wav"), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), "s16", "mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    found["wav"] = folder / "clip.wav"
    return found


def place(media: dict[str, Path], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert not path.exists(), path
    try:
        os.link(media[path.suffix[1:]], path)
    except OSError:  # another file system: copy
        shutil.copy(media[path.suffix[1:]], path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- the trees, each in its dataset's real layout ------------------------------------------------


def afew_tree(root: Path, media) -> None:
    classes = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
    for i, name in enumerate(classes):
        place(media, root / f"Train_AFEW/{name}/0000{i}0100.avi")
        place(media, root / f"Val_AFEW/{name}/0000{i}0200.avi")
    place(media, root / "Val_AFEW/Sad/000000100.avi")  # the stem of a train clip
    (root / "Train_AFEW/AlignedFaces_LBPTOP_Points").mkdir()
    place(media, root / "Test_AFEW/000900300.avi")


def dfew_tree(root: Path, media) -> None:
    for n in range(1, 13):
        place(media, root / f"Clip/original/part_{n % 2}/{n:05d}.mp4")
    folds = {1: "1,1\n2,2\n", 2: "3,3\n4,4\n", 3: "5,5\n6,6\n", 4: "7,7\n8,0\n", 5: "9,1\n13,2\n"}
    for k, rows in folds.items():
        write(
            root / f"EmoLabel_DataSplit/test(single-labeled)/set_{k}.csv",
            "video_name,label\n" + rows,
        )
        write(root / f"EmoLabel_DataSplit/train(single-labeled)/set_{k}.csv", "video_name,label\n")


def mafw_tree(root: Path, media) -> None:
    for n in range(1, 9):
        place(media, root / f"data/clips/{n:05d}.mp4")
    labels = ["anger", "disappointment", "happiness", "neutral", "contempt", "sadness"]
    for k in range(1, 6):
        rows = [f"{n:05d}.mp4 {labels[n - 1]}" for n in range(1, 7) if (n - 1) % 5 + 1 == k]
        write(root / f"Train & Test Set/single/no_caption/set_{k}/test.txt", "\n".join(rows) + "\n")
        write(root / f"Train & Test Set/single/no_caption/set_{k}/train.txt", "")


def ravdess_tree(root: Path, media) -> None:
    for actor in range(1, 13):
        folder = root / f"Video_Speech_Actor_{actor:02d}/Actor_{actor:02d}"
        for emotion in (1, actor % 7 + 2):
            place(media, folder / f"01-01-{emotion:02d}-01-01-01-{actor:02d}.mp4")
    place(media, root / "Video_Speech_Actor_01/Actor_01/02-01-03-01-01-01-01.mp4")  # video-only
    place(media, root / "Audio_Speech_Actors_01-24/Actor_02/03-01-03-01-01-01-02.wav")
    place(media, root / "Video_Song_Actor_03/Actor_03/01-02-03-01-01-01-03.mp4")  # song


def cremad_tree(root: Path, media) -> None:
    codes = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
    for actor in range(1001, 1011):
        for code in (codes[actor % 6], codes[(actor + 1) % 6]):
            place(media, root / f"VideoFlash/{actor}_IEO_{code}_XX.flv")
            place(media, root / f"AudioWAV/{actor}_IEO_{code}_XX.wav")
    place(media, root / "VideoFlash/1076_MTI_SAD_XX.flv")  # broken, the README says


MELD_HEAD = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"  # fmt: skip


def meld_tree(root: Path, media) -> None:
    rows = {
        "train": ['1,"Hi, all",Chandler,joy,positive,0,0,1,1,"0:1:0,1","0:1:2,1"\n',
                  '2,"Well\nthen",The Interviewer,neutral,neutral,0,1,1,1,a,b\n',
                  "3,Oh.,Monica,anger,negative,1,0,1,1,a,b\n"],
        "dev": ["1,What?,Ross,surprise,negative,0,0,2,2,a,b\n",
                "2,Missing.,Ross,fear,negative,110,7,2,2,a,b\n"],
        "test": ["1,Yes!,Joey,sadness,negative,0,0,3,3,a,b\n"],
    }  # fmt: skip
    folders = {"train": "train_splits", "dev": "dev_splits_complete",
               "test": "output_repeated_splits_test"}  # fmt: skip
    for split, lines in rows.items():
        write(root / f"{split}_sent_emo.csv", MELD_HEAD + "".join(lines))
        for line in lines:
            dialogue, utterance = next(csv.reader([line]))[5:7]
            if (dialogue, utterance) != ("110", "7"):
                place(media, root / folders[split] / f"dia{dialogue}_utt{utterance}.mp4")
    place(media, root / "output_repeated_splits_test/final_videos_testdia101_utt0.mp4")


TREES = {"afew": afew_tree, "dfew": dfew_tree, "mafw": mafw_tree, "ravdess": ravdess_tree,
         "crema-d": cremad_tree, "meld": meld_tree}  # fmt: skip


def build(name: str, tmp_path: Path, media, capsys, *extra: str) -> tuple[Path, str]:
    root = tmp_path / name
    if not root.exists():
        TREES[name](root, media)
    out = tmp_path / "out" / f"{name}.csv"
    assert main(["manifest", name, str(root), "--out", str(out), *extra]) == 0
    return out, capsys.readouterr().out


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out, newline="") as handle:
        return {row["clip_id"]: row for row in csv.DictReader(handle)}


def spec(out: Path) -> dict:
    return yaml.safe_load(out.with_suffix(".yaml").read_text())


def fail(capsys, *argv: str) -> str:
    assert main(["manifest", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    return err


# -- every registered dataset --------------------------------------------------------------------


def test_every_dataset_has_a_tree():
    assert set(TREES) == set(READERS)


@pytest.mark.parametrize("name", sorted(READERS))
def test_manifest_reads_back(name, tmp_path, media, capsys):
    out, printed = build(name, tmp_path, media, capsys)
    profile = READERS[name].profile
    written = spec(out)
    assert written["dataset"] == name and written["classes"] == list(profile.classes)
    assert written["protocol"]["kind"] == profile.protocol.kind and written["source"]
    with open(out, newline="") as handle:
        assert next(csv.reader(handle)) == ["clip_id", "path", "split", "label", "fold", "speaker"]
    clips = read_manifest(out)
    assert clips.attrs["spec"].classes == profile.classes
    assert clips["path"].map(lambda p: Path(p).is_file()).all()
    for row in rows(out).values():
        assert row["label"] in (*profile.classes, "")
        assert row["split"] == "train" or profile.protocol.kind == "fixed"
        assert (row["fold"] == "") == (profile.protocol.kind == "fixed")
    assert f"{out}: {name}, {len(clips)} clips" in printed


# -- per dataset ----------------------------------------------------------------------------------


def test_afew(tmp_path, media, capsys):
    out, printed = build("afew", tmp_path, media, capsys)
    got = rows(out)
    assert got["000030100"]["label"] == "Happy" and got["000030100"]["split"] == "train"
    assert got["train_000000100"]["label"] == "Angry" and got["val_000000100"]["label"] == "Sad"
    assert got["000900300"]["split"] == "test" and got["000900300"]["label"] == ""
    assert len(got) == 7 + 8 + 1 and spec(out)["excluded"] == {}
    assert Path(got["000900300"]["path"]).is_absolute()  # not under the manifest's folder
    assert "(unlabelled)" in printed and "excluded: none" in printed


def test_dfew(tmp_path, media, capsys):
    out, printed = build("dfew", tmp_path, media, capsys)
    got = rows(out)
    assert {k: (v["label"], v["fold"]) for k, v in got.items()} == {
        "00001": ("Happy", "1"), "00002": ("Sad", "1"), "00003": ("Neutral", "2"),
        "00004": ("Angry", "2"), "00005": ("Surprise", "3"), "00006": ("Disgust", "3"),
        "00007": ("Fear", "4"), "00009": ("Happy", "5"),
    }  # fmt: skip
    excluded = spec(out)["excluded"]
    assert excluded["non-single-label (label 0)"] == 1 and excluded["missing file"] == 1
    assert sum(v for k, v in excluded.items() if k.startswith("not in")) == 3  # 10, 11, 12
    assert spec(out)["protocol"] == {"kind": "folds", "folds": 5}
    assert "00013.mp4" in printed


def test_mafw(tmp_path, media, capsys):
    out, _ = build("mafw", tmp_path, media, capsys)
    got = rows(out)
    assert [(k, v["label"], v["fold"]) for k, v in got.items()] == [
        ("00001", "anger", "1"), ("00006", "sadness", "1"), ("00002", "disappointment", "2"),
        ("00003", "happiness", "3"), ("00004", "neutral", "4"), ("00005", "contempt", "5"),
    ]  # fmt: skip
    assert spec(out)["excluded"] == {"not in the single-expression set (compound or invalid)": 2}


def test_ravdess_speaker_folds_and_seed(tmp_path, media, capsys):
    out, printed = build("ravdess", tmp_path, media, capsys)
    got = rows(out)
    assert len(got) == 24
    assert got["01-01-03-01-01-01-01"]["label"] == "happy"
    assert got["01-01-01-01-01-01-05"]["label"] == "neutral" and got["01-01-01-01-01-01-05"]["speaker"] == "05"  # fmt: skip
    assert spec(out)["excluded"] == {
        "audio-only (modality 03)": 1, "song (vocal channel 02)": 1, "video-only (modality 02)": 1
    }  # fmt: skip
    assert spec(out)["protocol"] == {
        "kind": "speakers", "folds": 6, "seed": 0, "assignment": "shuffled"
    }  # fmt: skip
    first = {v["speaker"]: v["fold"] for v in got.values()}
    assert all(v["fold"] == first[v["speaker"]] for v in got.values())  # one fold per actor
    assert sorted(list(first.values()).count(str(k)) for k in range(1, 7)) == [2] * 6
    assert "fold 1 speakers:" in printed
    again, _ = build("ravdess", tmp_path, media, capsys, "--force")
    assert {v["speaker"]: v["fold"] for v in rows(again).values()} == first  # deterministic
    other, _ = build("ravdess", tmp_path, media, capsys, "--force", "--seed", "1", "--folds", "4")
    moved = {v["speaker"]: v["fold"] for v in rows(other).values()}
    assert spec(other)["protocol"] == {
        "kind": "speakers", "folds": 4, "seed": 1, "assignment": "shuffled"
    }  # fmt: skip
    assert set(moved.values()) == {"1", "2", "3", "4"} and moved != first
    blocks, _ = build("ravdess", tmp_path, media, capsys, "--force", "--speaker-folds", "blocks")
    assert spec(blocks)["protocol"] == {"kind": "speakers", "folds": 6, "assignment": "blocks"}
    by_actor = {int(v["speaker"]): int(v["fold"]) for v in rows(blocks).values()}
    actors = sorted(by_actor)  # the tree's 12 actors: contiguous pairs of sorted ids per fold
    assert by_actor == {actor: index // 2 + 1 for index, actor in enumerate(actors)}


def test_cremad(tmp_path, media, capsys):
    out, printed = build("crema-d", tmp_path, media, capsys)
    got = rows(out)
    assert len(got) == 20 and got["1001_IEO_ANG_XX"]["label"] == "Anger"
    assert got["1001_IEO_ANG_XX"]["speaker"] == "1001" and got["1001_IEO_ANG_XX"]["path"].endswith(".flv")  # fmt: skip
    assert list(spec(out)["excluded"].values()) == [1]
    folds = {}
    for row in got.values():
        assert folds.setdefault(row["speaker"], row["fold"]) == row["fold"]
    assert sorted(folds.values()) == sorted("1122334455")  # 10 actors in 5 folds of 2


def test_meld(tmp_path, media, capsys):
    root = tmp_path / "out"  # the manifest inside the dataset's folder: relative paths
    meld_tree(root / "MELD.Raw", media)
    out = root / "meld.csv"
    assert main(["manifest", "meld", str(root / "MELD.Raw"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    got = rows(out)
    assert list(got) == ["train_dia0_utt0", "train_dia0_utt1", "train_dia1_utt0",
                         "dev_dia0_utt0", "test_dia0_utt0"]  # fmt: skip
    assert got["dev_dia0_utt0"]["split"] == "val" and got["test_dia0_utt0"]["label"] == "sadness"
    assert got["train_dia0_utt1"]["speaker"] == "The Interviewer"
    assert got["train_dia0_utt0"]["path"] == "MELD.Raw/train_splits/dia0_utt0.mp4"
    assert spec(out)["excluded"] == {"missing file": 1}
    assert "dev_splits_complete/dia110_utt7.mp4" in printed


# -- errors: one line, naming the file and line ---------------------------------------------------


def test_bad_rows_name_file_and_line(tmp_path, media, capsys):
    for name in ("dfew", "mafw", "meld", "ravdess"):
        TREES[name](tmp_path / name, media)
    write(tmp_path / "dfew/EmoLabel_DataSplit/test(single-labeled)/set_2.csv", "video_name,label\n3,3\n4,9\n")  # fmt: skip
    write(tmp_path / "mafw/Train & Test Set/single/no_caption/set_3/test.txt", "00003.mp4 joy\n")
    lines = MELD_HEAD + '1,"two\nlines",Ross,joy,positive,0,0,1,1,a,b\n2,Hm.,Ross,happy,positive,0,1,1,1,a,b\n'  # fmt: skip
    write(tmp_path / "meld/train_sent_emo.csv", lines)
    place(media, tmp_path / "ravdess/Actor_04/01-01-09-01-01-01-04.mp4")
    out = str(tmp_path / "m.csv")
    assert "set_2.csv:3: video_name '4', label '9'" in fail(capsys, "dfew", str(tmp_path / "dfew"), "--out", out)  # fmt: skip
    assert "set_3/test.txt:1: clip 00003.mp4 has label 'joy'" in fail(capsys, "mafw", str(tmp_path / "mafw"), "--out", out)  # fmt: skip
    assert "train_sent_emo.csv:4: Emotion 'happy'" in fail(capsys, "meld", str(tmp_path / "meld"), "--out", out)  # fmt: skip
    assert "01-01-09-01-01-01-04.mp4: emotion 09" in fail(capsys, "ravdess", str(tmp_path / "ravdess"), "--out", out)  # fmt: skip
    assert not Path(out).exists()


def test_unknown_dataset_and_layouts(tmp_path, capsys):
    err = fail(capsys, "iemocap", str(tmp_path), "--out", str(tmp_path / "m.csv"))
    assert "unknown dataset 'iemocap'; known: afew, dfew, mafw, ravdess, crema-d, meld" in err
    assert "no Train_AFEW/ folder" in fail(capsys, "afew", str(tmp_path), "--out", str(tmp_path / "m.csv"))  # fmt: skip
    assert "no video folder (expected VideoFlash)" in fail(
        capsys, "cremad", str(tmp_path), "--out", str(tmp_path / "m.csv")
    )
    assert "speaker protocols; dfew has 5 official folds" in fail(
        capsys, "dfew", str(tmp_path), "--out", str(tmp_path / "m.csv"), "--folds", "3"
    )
    write(tmp_path / "lfs/VideoFlash/1001_IEO_ANG_XX.flv", "version https://git-lfs.github.com/spec/v1\n")  # fmt: skip
    assert "git-lfs pointer" in fail(capsys, "crema-d", str(tmp_path / "lfs"), "--out", str(tmp_path / "m.csv"))  # fmt: skip


def test_force(tmp_path, media, capsys):
    out, _ = build("crema-d", tmp_path, media, capsys)
    root = str(tmp_path / "crema-d")
    assert "exists; pass --force" in fail(capsys, "crema-d", root, "--out", str(out))
    build("crema-d", tmp_path, media, capsys, "--force", "--folds", "2")
    assert spec(out)["protocol"]["folds"] == 2
    other = write(tmp_path / "notes.csv", "name,value\n")
    assert "not a manifest this command wrote" in fail(capsys, "crema-d", root, "--out", str(other), "--force")  # fmt: skip
    assert other.read_text() == "name,value\n"
    assert "a .csv file" in fail(capsys, "crema-d", root, "--out", str(tmp_path / "m.yaml"))
    assert "need 2 to 10 folds" in fail(capsys, "crema-d", root, "--out", str(out), "--force", "--folds", "11")  # fmt: skip
    assert spec(out)["protocol"]["folds"] == 2  # a failed run leaves the manifest as it was


def test_other_unpackings_of_the_same_release(tmp_path, media, capsys):
    """The README's spelling ``(single_labeled)``, MAFW unpacked into its own folder with
    ``clips/`` at the root, MELD's CSVs and videos in ``train/ dev/ test/``, RAVDESS flat."""
    dfew_tree(tmp_path / "dfew", media)
    lists = tmp_path / "dfew/EmoLabel_DataSplit"
    (lists / "test(single-labeled)").rename(lists / "test(single_labeled)")
    mafw_tree(tmp_path / "m", media)
    (tmp_path / "mafw/MAFW").mkdir(parents=True)
    (tmp_path / "m/Train & Test Set").rename(tmp_path / "mafw/MAFW/Train & Test Set")
    (tmp_path / "m/data/clips").rename(tmp_path / "mafw/clips")
    meld_tree(tmp_path / "flat", media)
    for split, folder in (("train", "train_splits"), ("dev", "dev_splits_complete"),
                          ("test", "output_repeated_splits_test")):  # fmt: skip
        (tmp_path / f"meld/{split}").mkdir(parents=True)
        (tmp_path / f"flat/{split}_sent_emo.csv").rename(tmp_path / f"meld/{split}/{split}_sent_emo.csv")  # fmt: skip
        (tmp_path / f"flat/{folder}").rename(tmp_path / f"meld/{split}/{folder}")
    for actor in range(1, 7):
        place(media, tmp_path / f"ravdess/Actor_{actor:02d}/01-01-05-02-01-02-{actor:02d}.mp4")
    counts = {"dfew": 8, "mafw": 6, "meld": 5, "ravdess": 6}
    for name, count in counts.items():
        out = tmp_path / f"{name}.csv"
        assert main(["manifest", name, str(tmp_path / name), "--out", str(out)]) == 0
        assert len(rows(out)) == count, name
    capsys.readouterr()
    place(media, tmp_path / "ravdess/Video_Speech_Actor_01/Actor_01/01-01-05-02-01-02-01.mp4")
    err = fail(capsys, "ravdess", str(tmp_path / "ravdess"), "--out", str(tmp_path / "r.csv"))
    assert "01-01-05-02-01-02-01.mp4: the same clip is also at" in err
