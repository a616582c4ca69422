"""Image-set layouts (manifest, FER+, RAF-DB, AffectNet), their label mapping onto the 7 classes,
face crops, and bad input as one line naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from feature_store.__main__ import main
from feature_store.finetune.data import epoch_plan, prepare_crops
from feature_store.image_sets import CLASSES, ImageSetError, read_image_set
from feature_store.synthetic_faces import base_face, write_photos, write_rafdb
from feature_store.visual.faces import FaceCropper
from feature_store.visual.specs import FaceSpec

CONF = Path(__file__).resolve().parents[1] / "conf" / "store"


def _error_lines(capsys) -> list[str]:
    """The CLI's error lines on stderr (progress bars share it)."""
    err = capsys.readouterr().err.replace("\r", "\n").splitlines()
    return [line for line in err if "error" in line.lower()]


def _png(path: Path, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), 128, np.uint8)).save(path)


def test_ferplus_majority_votes_map_onto_the_classes(tmp_path: Path) -> None:
    # votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    rows = {
        "FER2013Train": [
            ("fer0000000.png", "0,10,0,0,0,0,0,0,0,0"),  # happy
            ("fer0000001.png", "6,1,0,0,0,0,0,3,0,0"),  # neutral (the single vote is dropped)
            ("fer0000002.png", "0,0,0,0,0,0,0,9,1,0"),  # contempt: dropped
            ("fer0000003.png", "4,4,0,0,0,0,0,0,2,0"),  # no majority: dropped
        ],
        "FER2013Test": [("fer0000004.png", "0,0,0,0,8,0,0,0,0,2")],  # angry
    }
    for folder, entries in rows.items():
        lines = [f'{name},"(0, 0, 48, 48)",{votes}' for name, votes in entries]
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "label.csv").write_text("\n".join(lines) + "\n")
        for name, _ in entries:
            _png(tmp_path / folder / name)
    found = read_image_set(tmp_path, val_fraction=0)
    assert found.layout == "ferplus" and found.faces == "aligned"
    labels = [CLASSES[i] for i in found.rows["label"]]
    assert labels == ["Happy", "Neutral", "Angry"]
    assert list(found.rows["split"]) == ["train", "train", "test"]
    assert found.dropped == {"contempt": 1, "no majority": 1}
    crops = prepare_crops(found, FaceSpec(size=64), tmp_path / "cache", progress=False)
    assert np.load(crops.crops).shape == (3, 64, 64, 3)


def test_rafdb_labels_and_a_val_split_from_train(tmp_path: Path) -> None:
    root = write_rafdb(
        tmp_path / "raf", ("surprise", "angry"), train_per_class=10, test_per_class=1
    )
    found = read_image_set(root, val_fraction=0.3)
    assert found.layout == "rafdb"
    assert set(found.rows["label"]) == {CLASSES.index("Surprise"), CLASSES.index("Angry")}
    counts = found.counts()
    assert counts["test"] == 2 and counts["val"] > 0 and counts["train"] + counts["val"] == 20
    again = read_image_set(root / "EmoLabel" / "list_patition_label.txt", val_fraction=0.3)
    assert list(again.rows["split"]) == list(found.rows["split"])  # the same held-out images


def test_affectnet_boxes_and_dropped_expressions(tmp_path: Path) -> None:
    images = tmp_path / "Manually_Annotated_Images" / "1"
    images.mkdir(parents=True)
    face = base_face(80)
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[50:130, 60:140] = face
    Image.fromarray(frame).save(images / "a.jpg")
    header = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
    (tmp_path / "training.csv").write_text(
        f'{header}\n1/a.jpg,60,50,80,80,"1;2",1,0.5,0.1\n1/a.jpg,60,50,80,80,"1;2",7,0,0\n'
        '1/a.jpg,60,50,80,80,"1;2",10,0,0\n'
    )
    (tmp_path / "validation.csv").write_text(f'{header}\n1/a.jpg,60,50,80,80,"1;2",6,0,0\n')
    found = read_image_set(tmp_path, val_fraction=0)
    assert found.layout == "affectnet" and found.faces == "box"
    assert [CLASSES[i] for i in found.rows["label"]] == ["Happy", "Angry"]
    assert list(found.rows["split"]) == ["train", "test"]
    assert found.dropped == {"contempt": 1, "no face": 1}
    crops = np.load(
        prepare_crops(found, FaceSpec(size=80, extend=0.0), tmp_path / "c", progress=False).crops
    )
    # the box cut without extension is the pasted face
    assert np.abs(crops[0].astype(int) - face.astype(int)).mean() < 6


def test_manifest_photos_are_cut_by_the_store_face_pipeline(tmp_path: Path) -> None:
    manifest = write_photos(tmp_path / "photos", per_split=1)
    found = read_image_set(manifest)
    assert found.layout == "manifest" and found.faces == "detect"
    spec = FaceSpec(size=64)
    crops = np.load(prepare_crops(found, spec, tmp_path / "cache", progress=False).crops)
    photo = np.asarray(Image.open(found.rows["path"][0]).convert("RGB"))
    expected, face = FaceCropper(spec)(photo)
    assert face is not None  # a real face was detected
    np.testing.assert_array_equal(crops[0], expected)


def test_balanced_plan_draws_classes_equally(tmp_path: Path) -> None:
    labels = np.array([0] * 90 + [1] * 10)
    order, theta = epoch_plan(labels, 1, 0, balanced=True, augment=None)
    share = (labels[order.numpy()] == 1).mean()
    assert 0.35 < share < 0.65 and theta is None
    again, _ = epoch_plan(labels, 1, 0, balanced=True, augment=None)
    assert (order == again).all()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path,split,label\na.png,train,Joy\n", r"manifest.csv:2: unknown label 'Joy'"),
        ("path,split,label\na.png,dev,Happy\n", r"manifest.csv:2: split 'dev'"),
        ("clip,when\n1,2\n", r"manifest.csv: not an image set"),
    ],
)
def test_bad_manifests_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "manifest.csv").write_text(content)
    with pytest.raises(ImageSetError, match=message):
        read_image_set(tmp_path / "manifest.csv")


def test_unknown_layout_and_bad_labels_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageSetError, match=r"not an image set in a known layout"):
        read_image_set(tmp_path)
    root = write_rafdb(tmp_path / "raf", ("happy",), train_per_class=1, test_per_class=1)
    listing = root / "EmoLabel" / "list_patition_label.txt"
    listing.write_text(listing.read_text() + "train_00009.jpg 8\n")
    with pytest.raises(
        ImageSetError, match=r"list_patition_label.txt:3: expected 'NAME.jpg LABEL'"
    ):
        read_image_set(root)


def test_unreadable_image_is_one_line_naming_it(tmp_path: Path, capsys) -> None:
    root = write_rafdb(tmp_path / "raf", ("happy", "sad"), train_per_class=2, test_per_class=1)
    broken = root / "Image" / "aligned" / "train_00002_aligned.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageSetError, match=r"train_00002_aligned.jpg: not a readable image"):
        prepare_crops(read_image_set(root), FaceSpec(size=32), tmp_path / "c", progress=False)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "modality: visual\nbackbones:\n  - name: resnet18\n    allow_random_weights: true\n"
    )
    code = main(["finetune", "--images", str(root), "--recipe", str(recipe), "--out",
                 str(tmp_path / "o.pth"), "--batch-size", "2"])  # fmt: skip
    errors = _error_lines(capsys)
    assert code == 2 and len(errors) == 1
    assert "train_00002_aligned.jpg: not a readable image" in errors[0]


def test_dlib_resnet_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    root = write_rafdb(tmp_path / "raf", ("happy",), train_per_class=1, test_per_class=1)
    code = main(["finetune", "--images", str(root), "--recipe", str(CONF / "dlib-resnet-basic.yaml"),
                 "--out", str(tmp_path / "o.pth")])  # fmt: skip
    errors = _error_lines(capsys)
    assert code == 2 and len(errors) == 1 and "not a PyTorch network" in errors[0]


def test_more_than_the_cluster_holds_is_refused_at_once() -> None:
    from feature_store.errors import StoreError
    from feature_store.finetune.run import _check_resources

    _check_resources({"CPU": 4.0}, 2, 0.0)
    _check_resources({"CPU": 4.0, "GPU": 2.0}, 4, 0.5)
    with pytest.raises(StoreError, match=r"need 2 GPU \(it has 0\)"):
        _check_resources({"CPU": 4.0}, 2, 1.0)
    with pytest.raises(StoreError, match=r"need 3 CPU \(it has 2\)"):
        _check_resources({"CPU": 2.0}, 3, 0.0)
