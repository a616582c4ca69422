"""Face crops as the paper makes them: dlib detection, 5-point alignment, box extended by 30 %,
resized to 224×224; a frame without a face passes whole, resized.

    >>> cropper = FaceCropper(FaceSpec())          # HOG detector, upsample 1, extend 0.3, 224 px
    >>> crop, face = cropper(frame)                 # uint8 [224, 224, 3]; face is None -> whole frame

The geometry is plain: the detector's box (left, top, right, bottom) keeps its centre and grows
by ``extend`` in width and height; with ``align`` the crop is rotated about that centre so the line
through the two eye centres (5-point landmarks) is level. One affine warp (PIL, bilinear) maps the
rotated, extended box onto the ``size``×``size`` crop. With ``chip: dlib`` the crop is instead
``dlib.get_face_chip`` of the 5 landmarks (``chip_padding``), the alignment dlib's 128-d face
descriptor was trained on, so ``dlib-resnet`` sees exactly what ``compute_face_descriptor`` would.
With ``chip: arcface`` the landmarks are warped onto the standard ArcFace 5-point template of
112×112 chips (insightface's ``arcface_src``; scaled as insightface's ``estimate_norm`` does for
other sizes) by the least-squares similarity transform (Umeyama), the alignment insightface and
face.evoLVe checkpoints were trained on. dlib's 5-point model has no mouth corners, so the
transform is fitted on the two eye centres (the mean of each eye's two corners) and the nose,
the points both have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dlib
import face_recognition_models
import numpy as np
from PIL import Image

from feature_store.visual.specs import FaceSpec


@dataclass(frozen=True)
class Face:
    """The largest face of a frame, in frame pixels."""

    box: tuple[float, float, float, float]  # left, top, right, bottom
    landmarks: np.ndarray | None  # [5, 2] (x, y): two corners of each eye, then the nose

    @property
    def angle(self) -> float:
        """Angle of the eye line in radians (0 = level; positive = right eye lower in the image)."""
        if self.landmarks is None:
            return 0.0
        first, second = self.landmarks[0:2].mean(axis=0), self.landmarks[2:4].mean(axis=0)
        left, right = (first, second) if first[0] <= second[0] else (second, first)
        return math.atan2(right[1] - left[1], right[0] - left[0])

    def rectangle(self) -> dlib.rectangle:
        """The detector's box as dlib's (inclusive) rectangle, in frame pixels."""
        left, top, right, bottom = self.box
        return dlib.rectangle(round(left), round(top), round(right - 1), round(bottom - 1))

    def shape(self) -> dlib.full_object_detection:
        """The 5 landmarks as the dlib shape the predictor returned."""
        if self.landmarks is None:
            raise ValueError("this face has no landmarks (alignment was off)")
        points = [dlib.point(round(x - 0.5), round(y - 0.5)) for x, y in self.landmarks]
        return dlib.full_object_detection(self.rectangle(), points)


def extended_box(
    box: tuple[float, float, float, float], extend: float
) -> tuple[float, float, float, float]:
    """Centre (x, y), width and height of ``box`` grown by ``extend`` (0.3 = 30 %) about its centre."""
    left, top, right, bottom = box
    return (
        (left + right) / 2,
        (top + bottom) / 2,
        (right - left) * (1 + extend),
        (bottom - top) * (1 + extend),
    )


def crop_affine(
    centre_x: float, centre_y: float, width: float, height: float, angle: float, size: int
) -> tuple[float, float, float, float, float, float]:
    """PIL AFFINE coefficients mapping the ``size``×``size`` crop onto the frame.

    Crop point (u, v) in continuous pixel coordinates takes the frame point
    centre + R(angle) · ((u / size − ½)·width, (v / size − ½)·height).
    """
    cos, sin = math.cos(angle), math.sin(angle)
    scale_x, scale_y = width / size, height / size
    return (
        cos * scale_x,
        -sin * scale_y,
        centre_x - cos * width / 2 + sin * height / 2,
        sin * scale_x,
        cos * scale_y,
        centre_y - sin * width / 2 - cos * height / 2,
    )


# ArcFace's 5-point template of a 112×112 chip (insightface ``arcface_src``; pixel centres at
# integers): left eye, right eye, nose tip, left and right mouth corner, as seen in the image.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ]
)


def arcface_points(size: int) -> np.ndarray:
    """The template for a ``size``×``size`` chip in continuous pixel coordinates (centre + ½):
    scaled by size/112 for multiples of 112, else by size/128 and shifted 8 px, as insightface's
    ``estimate_norm`` does."""
    if size % 112 == 0:
        ratio, shift = size / 112, 0.0
    else:
        ratio, shift = size / 128, 8.0 * size / 128
    points = ARCFACE_TEMPLATE * ratio
    points[:, 0] += shift
    return points + 0.5


def similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2×3 similarity (rotation, uniform scale, shift) taking ``source`` points closest to
    ``target`` in least squares (Umeyama 1991, no reflection)."""
    src_mean, dst_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - src_mean, target - dst_mean
    u, singular, vt = np.linalg.svd(dst.T @ src / len(source))
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src.var(axis=0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def arcface_affine(landmarks: np.ndarray, size: int) -> tuple[float, ...]:
    """PIL AFFINE coefficients (chip -> frame) of the ArcFace chip of dlib's 5 landmarks."""
    first, second = landmarks[0:2].mean(axis=0), landmarks[2:4].mean(axis=0)
    left, right = (first, second) if first[0] <= second[0] else (second, first)
    source = np.stack([left, right, landmarks[4]])
    to_chip = similarity(source, arcface_points(size)[:3])
    # PIL wants the inverse map: chip pixel -> frame pixel.
    inverse = np.linalg.inv(np.vstack([to_chip, [0.0, 0.0, 1.0]]))[:2]
    return tuple(float(value) for value in inverse.ravel())


def warp(frame: np.ndarray, coefficients: tuple[float, ...], size: int) -> np.ndarray:
    image = Image.fromarray(frame)
    return np.asarray(image.transform((size, size), Image.AFFINE, coefficients, Image.BILINEAR))


def whole_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """The no-face fallback: the whole frame resized (antialiased) to ``size``×``size``."""
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


class FaceCropper:
    """Detects the largest face of a frame and cuts the aligned, extended crop (see module doc)."""

    def __init__(self, spec: FaceSpec) -> None:
        self.spec = spec
        if spec.detector == "cnn":
            cnn = dlib.cnn_face_detection_model_v1(
                face_recognition_models.cnn_face_detector_model_location()
            )
            self._detect = lambda image: [found.rect for found in cnn(image, spec.upsample)]
        else:
            hog = dlib.get_frontal_face_detector()
            self._detect = lambda image: list(hog(image, spec.upsample))
        self._landmarks = (
            dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
            if spec.align
            else None
        )

    def detect(self, frame: np.ndarray) -> Face | None:
        """The largest face, or None."""
        height, width = frame.shape[:2]
        shrink = 1.0
        image = frame
        if self.spec.detect_max_side and max(height, width) > self.spec.detect_max_side:
            # Detection on a smaller copy is much cheaper; landmarks still use the full frame.
            shrink = self.spec.detect_max_side / max(height, width)
            small = (max(1, round(width * shrink)), max(1, round(height * shrink)))
            image = np.asarray(Image.fromarray(frame).resize(small, Image.BILINEAR))
        rects = self._detect(np.ascontiguousarray(image))
        if not rects:
            return None
        largest = max(rects, key=lambda rect: rect.width() * rect.height())
        # dlib's right/bottom are inclusive pixel indices; +1 gives the continuous box edge.
        box = (
            largest.left() / shrink,
            largest.top() / shrink,
            (largest.right() + 1) / shrink,
            (largest.bottom() + 1) / shrink,
        )
        landmarks = None
        if self._landmarks is not None:
            shape = self._landmarks(frame, Face(box=box, landmarks=None).rectangle())
            landmarks = np.array([(p.x + 0.5, p.y + 0.5) for p in shape.parts()], dtype=np.float64)
        return Face(box=box, landmarks=landmarks)

    def crop(self, frame: np.ndarray, face: Face | None) -> np.ndarray:
        """The aligned crop of ``face``, or the whole frame resized when there is none."""
        if face is None:
            return whole_frame(frame, self.spec.size)
        if self.spec.chip == "dlib":
            return dlib.get_face_chip(
                np.ascontiguousarray(frame),
                face.shape(),
                size=self.spec.size,
                padding=self.spec.chip_padding,
            )
        if self.spec.chip == "arcface":
            if face.landmarks is None:
                raise ValueError("chip 'arcface' needs the 5-point landmarks (align: true)")
            return warp(frame, arcface_affine(face.landmarks, self.spec.size), self.spec.size)
        centre_x, centre_y, width, height = extended_box(face.box, self.spec.extend)
        angle = face.angle if self.spec.align else 0.0
        return warp(
            frame,
            crop_affine(centre_x, centre_y, width, height, angle, self.spec.size),
            self.spec.size,
        )

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, Face | None]:
        face = self.detect(frame)
        return self.crop(frame, face), face
