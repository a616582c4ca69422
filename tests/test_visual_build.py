"""Visual store builds end to end on real video: the CLI, provenance and contact sheet, every bad
input of issue 6 (stop with one line, or rejected.csv with --skip-bad), a clip without a face
(warned and counted), resume after an interruption, random-weight backbones recorded, parallel
workers and Ray giving the same store."""

from __future__ import annotations

import csv
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from test_visual_pipeline import make_face_video
from torch import nn

import feature_store
from feature_store import build as build_mod
from feature_store.__main__ import main
from feature_store.build import build_store
from feature_store.errors import StoreError, StoreExistsError
from feature_store.recipe import RecipeError, load_recipe
from feature_store.store.format import sha256_file
from feature_store.visual.extractor import VisualExtractor
from feature_store.visual.matrix_build import build_stores
from feature_store.workdir import work_dir_for

CONF = Path(__file__).resolve().parents[1] / "conf" / "store"
RECIPE = {
    "modality": "visual",
    "backbones": [{"name": "dlib-resnet"}],
    "enhancement": "basic",
    "sampling": {"max_frames": 4},
    "preview_frames": 4,
}


def write_recipe(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({**RECIPE, **changes}))
    return path


def build_argv(manifest: Path, recipe: Path, out: Path) -> list[str]:
    return ["build", "--manifest", str(manifest), "--recipe", str(recipe), "--out", str(out)]


def write_manifest(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "path", "split", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """A folder of clips: two good ones and one of each bad kind."""
    folder = tmp_path_factory.mktemp("media")
    good = make_face_video(folder / "good.mp4", count=4, absent=(2,))
    make_face_video(folder / "other.mp4", count=3, absent=())
    make_face_video(folder / "blank.mp4", count=3, absent=(0, 1, 2))  # plain grey: no face
    (folder / "garbage.mp4").write_bytes(b"definitely not a video" * 50)
    (folder / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with av.open(str(folder / "empty.avi"), "w") as container:  # a video stream, no frames
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    with av.open(str(folder / "speech.wav"), "w") as container:  # audio only
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1600), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return folder


GOOD = [("g1", "good.mp4", "train", "Happy"), ("g2", "other.mp4", "test", "")]
BAD = [
    ("missing", "nowhere.mp4", "train", "Sad", "nowhere.mp4: no such file"),
    ("garbage", "garbage.mp4", "val", "Fear", "garbage.mp4: corrupt, truncated or not a video"),
    (
        "truncated",
        "truncated.mp4",
        "val",
        "angry",
        "truncated.mp4: corrupt, truncated or not a video",
    ),
    ("empty", "empty.avi", "train", "Neutral", "empty.avi: the video stream has no frames"),
    ("audio_only", "speech.wav", "train", "Disgust", "speech.wav: no video stream"),
]


def test_build_from_the_cli(tmp_path, media, capsys):
    manifest = write_manifest(media / "good.csv", GOOD)
    out = tmp_path / "stores" / "visual"
    argv = build_argv(manifest, write_recipe(tmp_path / "r.yaml"), out)
    assert main(argv) == 0
    store = feature_store.open_store(out)
    store.validate_deep()
    assert store.dim == 128 and store.modality == "visual" and store.name == "r"
    assert store.meta["backbone"] == "dlib-resnet" and store.meta["enhancement"] == "basic"
    assert store.meta["random_weights"] == [] and store.meta["num_rejected"] == 0
    assert store.meta["num_without_face"] == 0
    clips = store.clips.set_index("clip_id")
    assert clips.loc["g1", "label"] == 3 and clips.loc["g2", "label"] == -1
    assert clips["length"].tolist() == [4, 3]
    assert clips["frames_decoded"].tolist() == [4, 3]
    assert clips["frames_with_face"].tolist() == [3, 3]
    assert clips.loc["g1", "source_path"] == str(media / "good.mp4")
    vectors = store.features("g1")
    assert np.linalg.norm(vectors[0] - vectors[1]) < 0.45 < np.linalg.norm(vectors[0] - vectors[2])
    assert (out / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "rejected.csv").exists()
    assert not work_dir_for(out).exists()
    assert "2 clips, 7 vectors, dim 128" in capsys.readouterr().out
    # A second build refuses to overwrite the store without --force.
    assert main(argv) == 2
    assert "already holds a store" in capsys.readouterr().err


def test_a_clip_without_a_face_is_named_and_counted(tmp_path, media, capsys):
    blank = ("blank", "blank.mp4", "val", "Sad")
    manifest = write_manifest(media / "blank.csv", [GOOD[0], blank])
    out = tmp_path / "store"
    assert main(build_argv(manifest, write_recipe(tmp_path / "r.yaml"), out)) == 0
    printed = capsys.readouterr()
    warnings = [line for line in printed.err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: clip 'blank': no face in any of its 3 sampled frames; whole frames used"
    ]
    assert printed.out.strip() == (
        f"{out}: 2 clips, 7 vectors, dim 128, 1 without a face in any frame (frames_with_face = 0)"
    )
    store = feature_store.open_store(out)
    assert store.meta["num_without_face"] == 1
    assert store.clips.set_index("clip_id")["frames_with_face"].to_dict() == {"g1": 3, "blank": 0}
    # Several stores in one pass: one line per clip, each store's count.
    root = tmp_path / "matrix"
    recipes = [write_recipe(tmp_path / f"{n}.yaml", enhancement=n) for n in ("basic", "f-normfft")]
    stores = build_stores(manifest, recipes, root, progress=False)
    assert [line for line in capsys.readouterr().err.splitlines() if "warning" in line] == warnings
    assert {name: s.meta["num_without_face"] for name, s in stores.items()} == {
        "basic": 1,
        "f-normfft": 1,
    }
    # A face in the last frame only: the store sampling the first frame alone names itself.
    late = make_face_video(tmp_path / "late.mp4", count=4, absent=(0, 1, 2))
    manifest = write_manifest(tmp_path / "late.csv", [("late", str(late), "val", "Sad")])
    recipes = [
        write_recipe(tmp_path / f"{name}.yaml", sampling={"max_frames": frames})
        for name, frames in (("first", 1), ("ends", 2))
    ]
    stores = build_stores(manifest, recipes, tmp_path / "late", progress=False)
    assert [line for line in capsys.readouterr().err.splitlines() if "warning" in line] == [
        "warning: clip 'late': no face in its one sampled frame; whole frames used (stores first)"
    ]
    assert {name: s.meta["num_without_face"] for name, s in stores.items()} == {
        "first": 1,
        "ends": 0,
    }


def test_every_bad_input_is_listed_with_skip_bad(tmp_path, media):
    rows = [GOOD[0], *[row[:4] for row in BAD]]
    manifest = write_manifest(media / "bad.csv", rows)
    out = tmp_path / "store"
    store = build_store(
        manifest, write_recipe(tmp_path / "r.yaml"), out, skip_bad=True, progress=False
    )
    assert store.clip_ids() == ["g1"] and store.meta["num_rejected"] == len(BAD)
    with open(out / "rejected.csv", newline="") as handle:
        rejected = list(csv.DictReader(handle))
    assert [row["clip_id"] for row in rejected] == [row[0] for row in BAD]
    for row, (clip_id, name, *_, reason) in zip(rejected, BAD):
        assert row["path"] == str(media / name)
        assert reason in row["reason"], clip_id


@pytest.mark.parametrize("bad", BAD, ids=[row[0] for row in BAD])
def test_a_bad_clip_stops_the_build_with_one_line(tmp_path, media, capsys, bad):
    # One case also checks that a clip finished before the bad one is kept for the next run.
    keeps_finished = bad[0] == "truncated"
    rows = [("g1", str(media / "good.mp4"), "train", "Happy")] if keeps_finished else []
    manifest = write_manifest(tmp_path / "m.csv", [*rows, (bad[0], str(media / bad[1]), *bad[2:4])])
    out = tmp_path / "store"
    argv = build_argv(manifest, write_recipe(tmp_path / "r.yaml"), out)
    assert main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # the lines before are the progress bar
    assert "Traceback" not in err
    assert (
        last.startswith("feature_store build: error: ")
        and f"clip {bad[0]!r}" in last
        and bad[4] in last
    )
    assert not out.exists()
    if keeps_finished:
        assert len(list((work_dir_for(out) / "clips").glob("g1-*.npz"))) == 1


def test_resume_after_an_interrupted_build(tmp_path, media, monkeypatch):
    manifest = write_manifest(
        tmp_path / "m.csv", [(f"c{i}", str(media / "other.mp4"), "train", "Sad") for i in range(3)]
    )
    recipe = write_recipe(tmp_path / "r.yaml")
    out = tmp_path / "store"
    calls: list[str] = []
    real_extract = VisualExtractor.extract

    def interrupted(self, clip_id, path):
        calls.append(clip_id)
        if clip_id == "c1" and calls.count("c1") == 1:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second clip
        return real_extract(self, clip_id, path)

    monkeypatch.setattr(VisualExtractor, "extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_store(manifest, recipe, out, progress=False)
    assert not out.exists() and calls == ["c0", "c1"]
    store = build_store(manifest, recipe, out, progress=False)
    assert calls == ["c0", "c1", "c1", "c2"]  # c0 was not extracted again
    assert store.clip_ids() == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(store.features("c0"), store.features("c2"))
    assert not work_dir_for(out).exists()


def test_a_work_dir_from_another_recipe_is_not_mixed_in(tmp_path, media):
    manifest = write_manifest(
        tmp_path / "m.csv", [("c0", str(media / "other.mp4"), "train", "Sad")]
    )
    out = tmp_path / "store"
    work = build_mod.WorkDir(
        work_dir_for(out),
        load_recipe(write_recipe(tmp_path / "old.yaml", enhancement="f-normfft")),
        force=False,
    )
    (work.clips / "stale.npz").write_bytes(b"")
    with pytest.raises(
        StoreError, match="unfinished build made with a different recipe; use --force"
    ):
        build_store(manifest, write_recipe(tmp_path / "r.yaml"), out, progress=False)
    assert build_store(
        manifest, tmp_path / "r.yaml", out, force=True, progress=False
    ).clip_ids() == ["c0"]
    with pytest.raises(StoreExistsError):
        build_store(manifest, tmp_path / "r.yaml", out, progress=False)


def test_random_weights_only_when_the_recipe_says_so(tmp_path, media):
    manifest = write_manifest(tmp_path / "m.csv", [("c0", str(media / "other.mp4"), "val", "Fear")])
    untrained = [{"name": "resnet18", "pretrain": "none"}]
    with pytest.raises(StoreError, match="allow_random_weights: true"):
        build_store(
            manifest,
            write_recipe(tmp_path / "no.yaml", backbones=untrained),
            tmp_path / "a",
            progress=False,
        )
    assert not work_dir_for(tmp_path / "a").exists()
    allowed = [{**untrained[0], "allow_random_weights": True}]
    store = build_store(
        manifest,
        write_recipe(tmp_path / "yes.yaml", backbones=allowed),
        tmp_path / "b",
        progress=False,
    )
    assert store.dim == 512 and store.meta["random_weights"] == ["resnet18"]
    assert store.meta["recipe"]["backbones"][0]["allow_random_weights"] is True
    assert store.meta["backbones"][0]["preprocess"]["preset"] == "imagenet"  # the kind's usual


def test_store_json_records_preprocessing_and_ignored_heads(tmp_path, media, capsys):
    """An Emotion-FAN ResNet_AT checkpoint (DataParallel keys, attention heads) builds a store;
    store.json says what was fed to it and which keys were left out."""
    from upstream_nets import ResNetAT

    checkpoint = tmp_path / "fan.pth.tar"
    state = {f"module.{k}": v for k, v in ResNetAT().state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state, "prec1": 40.0}, checkpoint)
    manifest = write_manifest(tmp_path / "m.csv", [("c0", str(media / "other.mp4"), "val", "Fear")])
    spec = {"name": "resnet18", "checkpoint": str(checkpoint), "preprocess": "unit"}
    recipe = write_recipe(tmp_path / "r.yaml", backbones=[spec])
    store = build_store(manifest, recipe, tmp_path / "s", progress=False)
    described = store.meta["backbones"][0]
    assert described["preprocess"] == {
        "preset": "unit", "size": 224, "interpolation": "bilinear", "channels": "rgb",
        "scale": 1.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
    }  # fmt: skip
    assert described["checkpoint"] == {"path": str(checkpoint), "sha256": sha256_file(checkpoint)}
    heads = ["alpha.0.weight", "alpha.0.bias", "beta.0.weight", "beta.0.bias"]
    assert described["ignored_keys"][:4] == heads and len(described["ignored_keys"]) == 8
    notices = [line for line in capsys.readouterr().err.splitlines() if "notice:" in line]
    assert len(notices) == 1 and "8 keys outside backbone 'resnet18' ignored: alpha.0" in notices[0]


def test_weights_that_do_not_fit_stop_with_one_line(tmp_path, media, capsys):
    manifest = write_manifest(tmp_path / "m.csv", [("c0", str(media / "other.mp4"), "val", "Fear")])
    pickled = tmp_path / "model.pth"
    torch.save(nn.Linear(3, 3), pickled)
    recipe = write_recipe(
        tmp_path / "r.yaml",
        backbones=[{"name": "ir50", "checkpoint": str(pickled), "preprocess": "arcface"}],
    )
    argv = build_argv(manifest, recipe, tmp_path / "s")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.pth: holds pickled Python objects" in err[0]  # before any bar


# -- recipes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_loads(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem


def test_recipes_for_every_backbone_and_enhancement_ship():
    visual = [
        load_recipe(p)
        for p in CONF.glob("*.yaml")
        if yaml.safe_load(p.read_text())["modality"] == "visual"
    ]
    combos = {(r.backbones[0].name, r.enhancement) for r in visual}
    for backbone in ("ir50", "resnet18", "vggface"):
        for enhancement in (
            "basic",
            "f-mean",
            "f-meanstd",
            "f-meanstd-2",
            "f-normfft",
            "f-ar-mean",
        ):
            assert (backbone, enhancement) in combos
    assert {("dlib-resnet", "basic"), ("dlib-resnet", "f-meanstd")} <= combos


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"frames": 3}, r"r.yaml: frames: unknown key"),
        ({"faces": {"upsampel": 1}}, r"faces.upsampel: unknown key"),
        ({"faces": {"extend": -1}}, r"faces.extend: Input should be greater than or equal to 0"),
        ({"enhancement": "f-max"}, r"enhancement: unknown enhancement 'f-max'; known: basic, f-mean"),
        ({"backbones": [{"name": "alexnet"}]}, r"backbones.0.name: unknown backbone 'alexnet'; known: ir50"),
        ({"enhancement": "f-ar-mean"}, r"enhancement 'f-ar-mean' needs 2 backbone\(s\), got 1"),
        ({"modality": "smell"}, r"modality: expected one of visual, audio"),
    ],
)  # fmt: skip
def test_bad_recipes_name_file_and_key(tmp_path, changes, expected):
    with pytest.raises(RecipeError, match=expected):
        load_recipe(write_recipe(tmp_path / "r.yaml", **changes))


# -- parallel and distributed builds ----------------------------------------------------------------


@pytest.fixture(scope="module")
def serial_store(tmp_path_factory, media):
    folder = tmp_path_factory.mktemp("serial")
    manifest = write_manifest(
        folder / "m.csv",
        [
            (f"c{i}", str(media / name), "train", "Happy")
            for i, name in enumerate(["good.mp4", "other.mp4", "good.mp4"])
        ],
    )
    recipe = write_recipe(folder / "r.yaml")
    return manifest, recipe, build_store(manifest, recipe, folder / "store", progress=False)


def assert_same_store(a: feature_store.Store, b: feature_store.Store) -> None:
    assert a.clip_ids() == b.clip_ids()
    for clip_id in a.clip_ids():
        np.testing.assert_allclose(a.features(clip_id), b.features(clip_id), atol=1e-5)


@pytest.mark.slow
def test_worker_processes_build_the_same_store(tmp_path, serial_store):
    manifest, recipe, serial = serial_store
    assert_same_store(
        build_store(manifest, recipe, tmp_path / "p", workers=2, progress=False), serial
    )


@pytest.mark.slow
def test_ray_builds_the_same_store(tmp_path, serial_store):
    ray = pytest.importorskip("ray")
    manifest, recipe, serial = serial_store
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert_same_store(
            build_store(manifest, recipe, tmp_path / "r", use_ray=True, progress=False), serial
        )
    finally:
        ray.shutdown()
