"""The visual pipeline's parts on real video: decoding and sampling, dlib faces and the 30 % crop,
backbones and their checkpoints, and the enhancements against a hand computation.

The clips are made here with PyAV from scikit-image's astronaut photograph, moved and scaled
across frames, with frames where the face is absent.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import skimage.filters
import skimage.transform
import torch
from PIL import Image

from feature_store.visual.backbones import Backbone, WeightsError, make_backbone
from feature_store.visual.enhance import ENHANCEMENTS, ROTATIONS, SCALES, make_enhancement
from feature_store.visual.faces import (
    ARCFACE_TEMPLATE,
    Face,
    FaceCropper,
    arcface_affine,
    crop_affine,
    extended_box,
    whole_frame,
)
from feature_store.visual.nets import VGG16, vgg_face_dag_name
from feature_store.visual.specs import BackboneSpec, FaceSpec
from feature_store.visual.video import VideoError, decode_frames, sample_indices, write_video

FACE_PATCH = skimage.data.astronaut()[20:240, 120:330]  # the face with some margin, 220×210


def face_frames(count: int, *, absent: tuple[int, ...] = (), size=(320, 240)) -> list[np.ndarray]:
    """Grey frames with the astronaut's face moving right and down and changing scale."""
    frames = []
    for index in range(count):
        canvas = np.full((size[1], size[0], 3), 90, np.uint8)
        if index not in absent:
            scale = 0.9 + 0.05 * (index % 3)
            patch = np.asarray(
                Image.fromarray(FACE_PATCH).resize(
                    (int(FACE_PATCH.shape[1] * scale), int(FACE_PATCH.shape[0] * scale))
                )
            )
            x, y = 10 + 12 * index, 4 + 2 * index
            height, width = min(len(patch), size[1] - y), min(patch.shape[1], size[0] - x)
            canvas[y : y + height, x : x + width] = patch[:height, :width]
        frames.append(canvas)
    return frames


def make_face_video(path: Path, count: int = 4, absent: tuple[int, ...] = (2,)) -> Path:
    write_video(path, face_frames(count, absent=absent))
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_face_video(tmp_path_factory.mktemp("video") / "face.mp4", count=6, absent=(2,))


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    return FaceCropper(FaceSpec())


# -- decoding and sampling ----------------------------------------------------------------------


def test_sampling_rules():
    times = [i / 25 for i in range(50)]  # 2 s at 25 fps
    assert sample_indices(times) == list(range(50))
    capped = sample_indices(times, max_fps=5)
    assert len(capped) == 10 and capped[:3] == [0, 5, 10]
    assert sample_indices(times, max_frames=5) == [0, 12, 24, 37, 49]
    assert sample_indices(times, max_fps=5, max_frames=3) == [0, 20, 45]


def test_decode_keeps_sampled_frames(video):
    clip = decode_frames(video, max_frames=3)
    assert clip.decoded == 6
    assert len(clip.frames) == 3 and clip.frames[0].shape == (240, 320, 3)
    assert clip.frames[0].dtype == np.uint8
    assert clip.times == pytest.approx([0.0, 0.08, 0.2])  # linspace(0, 5, 3) rounds to 0, 2, 5


def test_bad_videos(tmp_path, video):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    for path in (garbage, truncated):
        with pytest.raises(VideoError, match="corrupt, truncated or not a video"):
            decode_frames(path)


# -- faces -------------------------------------------------------------------------------------


def test_dlib_finds_the_moving_face(video, cropper):
    clip = decode_frames(video)
    faces = [cropper.detect(frame) for frame in clip.frames]
    assert [face is None for face in faces] == [False, False, True, False, False, False]
    for index, face in enumerate(faces):
        if face is None:
            continue
        left, top, right, bottom = face.box
        # The face sits about 60..150 px right and 20..130 px down of the patch's corner.
        assert 40 < left - 12 * index < 100 and 0 < top - 2 * index < 80
        assert 70 < right - left < 120 and 70 < bottom - top < 120
        assert face.landmarks.shape == (5, 2)
        assert abs(math.degrees(face.angle)) < 8


def test_crop_follows_the_30_percent_rule():
    """A box whose extended size equals the crop size makes the warp a pure shift: exact pixels."""
    frame = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    face = Face(box=(100.0, 50.0, 260.0, 210.0), landmarks=None)  # 160 px; 160 * 1.3 = 208
    assert extended_box(face.box, 0.3) == pytest.approx((180, 130, 208, 208))
    crop = FaceCropper(FaceSpec(size=208, align=False)).crop(frame, face)
    np.testing.assert_array_equal(crop, frame[26:234, 76:284])
    # And in general: the crop's corners land on the corners of the extended box.
    a, b, c, d, e, f = crop_affine(*extended_box((10, 20, 110, 140), 0.3), 0.0, 224)
    assert (c, f) == pytest.approx((-5, 2))  # 100×120 grown to 130×156 about (60, 80)
    assert (a * 224 + c, e * 224 + f) == pytest.approx((125, 158))


def test_alignment_levels_a_tilted_face(cropper):
    frame = face_frames(1)[0]
    level = cropper.detect(frame)
    tilted = cropper.detect(np.asarray(Image.fromarray(frame).rotate(12, center=(120, 110))))
    # PIL turns the image counter-clockwise, so the right eye rises: the eye angle drops by 12°.
    assert math.degrees(level.angle - tilted.angle) == pytest.approx(12, abs=3)
    crop_level = cropper.crop(frame, level).astype(float)
    crop_tilted = cropper.crop(
        np.asarray(Image.fromarray(frame).rotate(12, center=(120, 110))), tilted
    )
    unaligned = FaceCropper(FaceSpec(align=False)).crop(
        np.asarray(Image.fromarray(frame).rotate(12, center=(120, 110))), tilted
    )
    # Aligned crops of the level and the tilted face agree better than an unaligned one does.
    assert np.abs(crop_tilted - crop_level).mean() < np.abs(unaligned - crop_level).mean()


def test_no_face_passes_the_whole_frame(cropper):
    frame = face_frames(1, absent=(0,))[0]
    frame[10:20, 10:20] = 255
    crop, face = cropper(frame)
    assert face is None
    assert crop.shape == (224, 224, 3)
    np.testing.assert_array_equal(crop, whole_frame(frame, 224))
    assert crop[8:14, 8:14].mean() > 200  # the white square, scaled 0.7 and 0.93


# -- backbones and checkpoints ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, dim",
    [("ir50", 512), ("ir-se50", 512), ("iresnet50", 512), ("resnet18", 512), ("vggface", 4096)],
)
def test_torch_backbone_dims_and_random_weights(name, dim):
    backbone = make_backbone(BackboneSpec(name=name, allow_random_weights=True))
    assert backbone.random_weights and backbone.dim == dim
    assert backbone(torch.rand(1, 3, 224, 224)).shape == (1, dim)
    assert backbone.describe()["preprocess"]["preset"]  # the kind's usual one, recorded
    with pytest.raises(
        WeightsError, match="has no checkpoint; name one, or set allow_random_weights"
    ):
        make_backbone(BackboneSpec(name=name))


def test_vgg_face_dag_names_map_onto_vgg16():
    dag_names = [
        f"conv{b}_{p}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for p in range(1, n + 1)
    ]
    mapped = {vgg_face_dag_name(f"{layer}.weight") for layer in dag_names + ["fc6", "fc7"]}
    expected = {k for k in VGG16().state_dict() if k.endswith("weight")}
    assert mapped == expected
    assert vgg_face_dag_name("fc8.bias") == "classifier.6.bias"


def test_dlib_resnet_describes_the_same_face_alike(video, cropper):
    backbone = make_backbone(BackboneSpec(name="dlib-resnet"))
    clip = decode_frames(video)
    crops = [cropper(frame)[0] for frame in clip.frames]
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    vectors = backbone(x).numpy()
    assert vectors.shape == (6, 128)
    same = np.linalg.norm(vectors[0] - vectors[3])
    blank = np.linalg.norm(vectors[0] - vectors[2])  # frame 2 has no face
    assert same < 0.45 < blank  # dlib's usual "same person" threshold is 0.6


# -- enhancements ---------------------------------------------------------------------------------


class PooledPixels(Backbone):
    """A simple, exactly known backbone: the crop average-pooled to 4×4, flattened (48-d)."""

    name, dim, pretrain = "pooled", 48, None

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def __call__(self, crops):
        return self.weight * torch.nn.functional.adaptive_avg_pool2d(crops, 4).flatten(1) ** 2


def hand_copies(image: np.ndarray, rotations, scales) -> list[np.ndarray]:
    """The documented copies made with scikit-image: turn counter-clockwise, magnify, mirror."""
    copies = []
    for degrees in rotations:
        turned = skimage.transform.rotate(image, degrees, order=1, mode="constant", cval=0)
        for scale in scales:
            centre = np.array(image.shape[1::-1]) / 2 - 0.5
            magnify = skimage.transform.SimilarityTransform(
                scale=scale, translation=centre * (1 - scale)
            )
            zoomed = skimage.transform.warp(
                turned, magnify.inverse, order=1, mode="constant", cval=0
            )
            copies += [zoomed, zoomed[:, ::-1]]
    return copies


@pytest.fixture(scope="module")
def smooth_crops() -> torch.Tensor:
    """Two blurred faces on a black border, so both implementations see black outside the crop."""
    crops = []
    for patch in (FACE_PATCH, FACE_PATCH[::-1]):
        crop = np.zeros((64, 64, 3))
        crop[12:52, 12:52] = skimage.transform.resize(patch, (40, 40))
        crops.append(skimage.filters.gaussian(crop, sigma=1.5, channel_axis=-1))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()


@pytest.mark.parametrize(
    "name, rotations, scales",
    [
        ("f-mean", ROTATIONS, SCALES),
        ("f-meanstd", ROTATIONS, SCALES),
        ("f-meanstd-2", (-15, 0, 15), (0.75, 1, 1.25)),
    ],
)
def test_copy_enhancements_match_a_hand_computation(smooth_crops, name, rotations, scales):
    backbone = PooledPixels()
    result = make_enhancement(name)(smooth_crops, [backbone], batch_size=7).numpy()
    for frame, crop in enumerate(smooth_crops.permute(0, 2, 3, 1).numpy()):
        copies = hand_copies(crop, rotations, scales)
        assert len(copies) == 18
        features = backbone(torch.from_numpy(np.stack(copies)).permute(0, 3, 1, 2).float()).numpy()
        expected = features.mean(axis=0)
        if name != "f-mean":
            expected = np.concatenate([expected, features.std(axis=0)])
        np.testing.assert_allclose(result[frame], expected, atol=4e-3)


def test_normfft_and_ar_mean(smooth_crops):
    first, second = PooledPixels(), PooledPixels(weight=2.0)
    basic = first(smooth_crops).double().numpy()
    spectrum = np.fft.fft(basic, axis=1)
    spectrum /= np.sqrt((np.abs(spectrum) ** 2).sum(axis=1, keepdims=True))
    expected = np.concatenate([spectrum.real, spectrum.imag], axis=1)
    np.testing.assert_allclose(
        make_enhancement("f-normfft")(smooth_crops, [first], 8), expected, atol=1e-6
    )
    f_mean = make_enhancement("f-mean")
    ar = make_enhancement("f-ar-mean")(smooth_crops, [first, second], 8)
    torch.testing.assert_close(
        ar, torch.cat([f_mean(smooth_crops, [first], 8), f_mean(smooth_crops, [second], 8)], 1)
    )


@pytest.mark.parametrize("name", sorted(ENHANCEMENTS))
def test_every_enhancement_has_the_dim_it_promises(smooth_crops, name):
    enhancement = make_enhancement(name)
    pair = [PooledPixels(), PooledPixels(weight=0.5)][: enhancement.backbones]
    out = enhancement(smooth_crops, pair, batch_size=16)
    assert out.shape == (2, enhancement.out_dim([b.dim for b in pair]))
    assert torch.isfinite(out).all()


def test_dlib_chip_gives_dlib_resnet_exactly_dlibs_own_descriptor(video):
    """With ``chip: dlib`` the crop is dlib's face chip, so our batched dlib-resnet backbone must
    return what dlib's reference ``compute_face_descriptor(frame, shape)`` computes from the frame
    and the 5-point shape (it cuts the same 150×150 chip internally)."""
    import dlib
    import face_recognition_models

    spec = FaceSpec(chip="dlib", size=150)
    cropper = FaceCropper(spec)
    backbone = make_backbone(BackboneSpec(name="dlib-resnet"))
    reference = dlib.face_recognition_model_v1(
        face_recognition_models.face_recognition_model_location()
    )
    predictor = dlib.shape_predictor(
        face_recognition_models.pose_predictor_five_point_model_location()
    )
    frames = decode_frames(video).frames
    checked = 0
    for frame in frames:
        crop, face = cropper(frame)
        assert crop.shape == (150, 150, 3) and crop.dtype == np.uint8
        if face is None:
            continue
        ours = backbone(torch.from_numpy(crop[None]).permute(0, 3, 1, 2).float() / 255)[0]
        shape = predictor(frame, face.rectangle())
        assert [(p.x, p.y) for p in shape.parts()] == [(p.x, p.y) for p in face.shape().parts()]
        theirs = np.asarray(reference.compute_face_descriptor(frame, shape))
        assert np.abs(ours.numpy() - theirs).max() < 1e-5
        checked += 1
    assert checked == 5  # six frames, one without a face


def test_dlib_chip_needs_alignment():
    with pytest.raises(ValueError, match="needs align: true"):
        FaceSpec(chip="dlib", align=False)


def _similarity(source: np.ndarray, target: np.ndarray):
    transform = skimage.transform.SimilarityTransform
    if hasattr(transform, "from_estimate"):  # scikit-image >= 0.26
        return transform.from_estimate(source, target)
    reference = transform()
    assert reference.estimate(source, target)
    return reference


def test_arcface_chip_puts_the_landmarks_on_insightfaces_template():
    """``chip: arcface`` fits the similarity insightface's ``estimate_norm`` fits (scikit-image's
    ``SimilarityTransform.estimate``, Umeyama) from the eye centres and nose to the template, and
    the crop shows the frame through it."""
    frame = np.ascontiguousarray(skimage.data.astronaut())
    for size in (112, 224):
        cropper = FaceCropper(FaceSpec(chip="arcface", size=size))
        crop, face = cropper(frame)
        assert crop.shape == (size, size, 3) and face is not None
        corners = face.landmarks - 0.5  # back to dlib's integer pixel centres, as cv2 uses
        eyes = sorted([corners[0:2].mean(axis=0), corners[2:4].mean(axis=0)], key=lambda p: p[0])
        source = np.stack([*eyes, corners[4]])
        reference = _similarity(source, ARCFACE_TEMPLATE[:3] * size / 112)
        # Our PIL coefficients map chip pixels to frame pixels: the inverse of the reference.
        coefficients = np.array(arcface_affine(face.landmarks, size)).reshape(2, 3)
        to_frame = np.linalg.inv(reference.params)[:2]
        shift = np.array([0.5, 0.5])  # continuous coordinates on both sides
        for point in ARCFACE_TEMPLATE * size / 112:
            ours = coefficients[:, :2] @ (point + shift) + coefficients[:, 2] - shift
            np.testing.assert_allclose(ours, to_frame[:, :2] @ point + to_frame[:, 2], atol=1e-6)
        expected = skimage.transform.warp(frame, reference.inverse, output_shape=(size, size))
        assert np.abs(crop / 255 - expected)[4:-4, 4:-4].mean() < 0.02


def test_arcface_chip_needs_alignment_and_a_template_size():
    with pytest.raises(ValueError, match="chip 'arcface' aligns on the 5-point landmarks"):
        FaceSpec(chip="arcface", align=False)
    with pytest.raises(ValueError, match="multiple of 112 or 128 .* got 150"):
        FaceSpec(chip="arcface", size=150)
    assert FaceSpec(chip="arcface", size=128).size == 128
