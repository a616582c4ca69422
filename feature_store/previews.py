"""The default contact sheet of a store: a few clips' ``Extractor.preview()`` images tiled under
their clip ids (the visual stores' face crops). An extractor with other previews draws its own
(``Extractor.save_previews``; the audio stores' spectrograms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_contact_sheet(path: Path, previews: list[tuple[str, np.ndarray]]) -> None:
    """One row per clip: its clip id, then its preview image (PNG). Drawn with PIL: matplotlib's
    import and layout took seconds, a share of a short build."""
    from PIL import Image, ImageDraw

    label, gap = 14, 6
    widest = max(image.shape[1] for _, image in previews)
    height = sum(label + image.shape[0] + gap for _, image in previews)
    sheet = Image.new("RGB", (widest, height), "white")
    draw = ImageDraw.Draw(sheet)
    top = 0
    for clip_id, image in previews:
        draw.text((2, top + 1), clip_id, fill="black")
        sheet.paste(Image.fromarray(np.ascontiguousarray(image[..., :3])), (0, top + label))
        top += label + image.shape[0] + gap
    sheet.save(path)
