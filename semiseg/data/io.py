"""Checked image and mask decoding: every failure is a :class:`DataError` naming the file.

Images are decoded with OpenCV from bytes read once (so a missing file, an empty file, a corrupt file
and a truncated JPEG, which OpenCV would otherwise decode silently into grey garbage, are told apart).
Masks are class-index PNGs read with PIL, which returns palette ('P') indices as they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from semiseg.constants import IGNORE
from semiseg.errors import DataError

#: Second split column of an unlabeled entry without a mask (UniMatch V2's Cityscapes-extra list).
NO_MASK = "None"
#: Mask encodings: ``index`` = stored ids 0..C-1 and 255; ``reduce_zero`` = raw ids with 0 = unlabeled
#: and 1..C (raw ADEChallengeData2016), reduced on load to 0..C-1 with 0 → 255.
MASK_ENCODINGS = ("index", "reduce_zero")
_JPEG_SOI, _JPEG_EOI = b"\xff\xd8", b"\xff\xd9"


def _read_bytes(path: Path, what: str) -> np.ndarray:
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    if data.size == 0:
        raise DataError(f"{what} {path} is an empty file")
    return data


def read_image(path: Path) -> np.ndarray:
    """Decode an RGB uint8 H×W×3 image."""
    data = _read_bytes(path, "image")
    raw = data.tobytes()
    if raw[:2] == _JPEG_SOI and _JPEG_EOI not in raw[-1024:]:
        raise DataError(f"image {path} is a truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"image {path} is corrupt or not an image OpenCV can decode")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class MaskCodec:
    """How a dataset's masks are stored and checked: class count, encoding, and a hint for bad ids."""

    num_classes: int
    encoding: str = "index"
    hint: str = ""

    def __post_init__(self) -> None:
        if self.encoding not in MASK_ENCODINGS:
            raise DataError(f"unknown mask encoding {self.encoding!r}; valid: {', '.join(MASK_ENCODINGS)}")

    def decode(self, stored: np.ndarray, path: Path) -> np.ndarray:
        """Stored mask → class ids 0..C-1 and 255, checking the declared encoding."""
        if self.encoding == "reduce_zero":
            if (stored == IGNORE).any():
                raise DataError(
                    f"mask {path} holds 255 but data.mask_encoding is 'reduce_zero' (raw annotations, 0 = "
                    f"unlabeled, 1..{self.num_classes}); it looks already reduced: set data.mask_encoding=index "
                    f"(never reduce twice)")
            self._check_range(stored, path, self.num_classes + 1, "raw ids 0..{}")
            mask = stored.astype(np.int16) - 1
            mask[mask < 0] = IGNORE
            return mask.astype(np.uint8)
        self._check_range(stored, path, self.num_classes, "0..{} and 255")
        return stored

    def _check_range(self, stored: np.ndarray, path: Path, limit: int, valid: str) -> None:
        valid_ids = stored[stored != IGNORE] if self.encoding == "index" else stored
        top = int(valid_ids.max()) if valid_ids.size else 0
        if top >= limit:
            hint = f"; {self.hint}" if self.hint else ""
            raise DataError(f"mask {path} holds class id {top}; valid ids are {valid.format(limit - 1)}{hint}")


def read_mask(path: Path, codec: MaskCodec) -> np.ndarray:
    """Read a single-channel class-index PNG (palette or grayscale) and decode it with ``codec``."""
    _read_bytes(path, "mask")  # missing / empty, with the same wording as images
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L", "I", "I;16"):
                raise DataError(f"mask {path} is a {im.mode} image; expected a single-channel class-index PNG "
                                f"(palette or grayscale), not a colour rendering")
            stored = np.array(im)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"mask {path} is corrupt ({exc})") from None
    if stored.dtype != np.uint8:
        if stored.size and (stored.min() < 0 or stored.max() > 255):
            raise DataError(f"mask {path} holds values outside 0..255 ({int(stored.min())}..{int(stored.max())})")
        stored = stored.astype(np.uint8)
    return codec.decode(stored, path)


def read_pair(root: Path, image_rel: str, mask_rel: str, codec: MaskCodec,
              allow_no_mask: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Image and mask of one split entry; sizes must agree. ``None`` as mask gives all-zero (unlabeled only)."""
    img = read_image(root / image_rel)
    if mask_rel == NO_MASK:
        if not allow_no_mask:
            raise DataError(f"entry '{image_rel} None' has no mask; only unlabeled lists may omit masks")
        return img, np.zeros(img.shape[:2], dtype=np.uint8)
    mask = read_mask(root / mask_rel, codec)
    if mask.shape != img.shape[:2]:
        raise DataError(f"mask {root / mask_rel} is {mask.shape[1]}x{mask.shape[0]} but its image "
                        f"{root / image_rel} is {img.shape[1]}x{img.shape[0]}")
    return img, mask
