"""The built-in ``demo`` dataset: procedurally generated shape scenes in Pascal VOC layout.

Every image is rendered from its own seeded ``numpy.random.Generator``, so the dataset is
reproducible image by image. Five object classes are defined by shape (disk, rectangle,
triangle, star, ring); an object takes its class's typical hue with probability CLASS_COLOUR_PROB
and any colour otherwise, with a random texture, over varied backgrounds, so colour is a cue but
only geometry decides the class. How hard the scenes are (object size and count, clutter, contrast)
is a property of each :class:`SceneSet`.

A :class:`SceneSet` names what a generated set draws. ``DEMO`` is the dataset above; ``PRETEXT``
(dataset ``demo_pretext``) draws five *other* shapes (hexagon, cross, crescent, arrow, L) in other
hues from its own random streams: the disjoint source task on which the demo's encoder is pretrained
(:mod:`semiseg.pretext`), as real encoders are pretrained on ImageNet. ``ensure_demo``
generates a set once, atomically, into the layout that the VOC loaders read::

    root/JPEGImages/<id>.jpg                  RGB images
    root/SegmentationClass/<id>.png           uint8 class indices, 255 = ignore (boundary band)
    root/splits/<split>/labeled.txt           "JPEGImages/<id>.jpg SegmentationClass/<id>.png"
    root/splits/<split>/unlabeled.txt         (not for "all")
    root/splits/val.txt
    root/meta.json                            written last: marks the dataset complete
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from semiseg.constants import IGNORE
from semiseg.data.lists import read_split
from semiseg.errors import DataError

IMAGE_SIZE = 64
NUM_TRAIN = 768
NUM_VAL = 160
MIN_VISIBLE_AREA = 20  # pixels of an object that must lie inside the image
JPEG_QUALITY = 95
#: Probability that an object takes its class's typical hue (as in real data, colour is a cue, not the label).
CLASS_COLOUR_PROB = 0.85


@dataclass(frozen=True)
class SceneSet:
    """What a generated set draws: class names (index 0 = background, the others are shape names that
    ``_shape_mask`` knows), each class's typical hue in degrees, a palette for previews, the offset
    of its random streams (sets with different offsets share no image), a format version, and how hard
    its scenes are: object diameters in pixels (sampled uniformly), objects per image, background
    clutter or not, the colour distance an object's colour should keep from what lies under it (up to
    ``contrast_tries`` draws) and the share of objects forced to a solid fill."""

    name: str
    classes: tuple[str, ...]
    hues: tuple[float | None, ...]
    palette: tuple[tuple[int, int, int], ...]
    stream_offset: int
    version: int
    object_size: tuple[float, float] = (14.0, 34.0)
    objects_per_image: tuple[int, int] = (2, 6)
    clutter: bool = True
    min_contrast: float = 70.0
    contrast_tries: int = 5
    solid_share: float = 0.0


DEMO = SceneSet(
    "demo", ("background", "disk", "rectangle", "triangle", "star", "ring"),
    (None, 350.0, 120.0, 55.0, 215.0, 28.0),
    ((0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)),
    stream_offset=0, version=5,
    # v5: larger, fewer, clearer objects than the pretext's (v4 drew them like PRETEXT): on v4 UniMatch gained
    # nothing over supervised in any recipe tried (docs/demo.md)
    object_size=(22.0, 40.0), objects_per_image=(1, 4), clutter=False, min_contrast=110.0, contrast_tries=20,
    solid_share=0.5)
PRETEXT = SceneSet(
    "demo_pretext", ("background", "hexagon", "cross", "crescent", "arrow", "lshape"),
    (None, 80.0, 170.0, 260.0, 300.0, 10.0),
    ((0, 0, 0), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (128, 128, 0)),
    stream_offset=10, version=1)
DEMO_SPLITS: dict[str, int] = {
    "1_32": NUM_TRAIN // 32,
    "1_16": NUM_TRAIN // 16,
    "1_8": NUM_TRAIN // 8,
    "1_4": NUM_TRAIN // 4,
    "all": NUM_TRAIN,
}

_TRAIN, _VAL, _SPLITS = 0, 1, 2  # stream indices of the per-image / per-split generators
_YY, _XX = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
_SCRIBBLE_CHARS = "abcdefghkmnprstuvwxyzABDEFGHKMNPRSTXYZ0123456789&%#?"
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX)


# --------------------------------------------------------------------------- public API


def ensure_demo(root: str | Path, seed: int = 0, scenes: SceneSet = DEMO) -> Path:
    """Return ``root`` holding the complete generated set ``scenes`` for ``seed``, generating it if absent.

    Generation goes to a temporary sibling folder that is renamed into place, so concurrent
    callers never see a half-written dataset. An existing ``root`` that is incomplete, from an
    older version, another set or another seed raises ``DataError`` and is left untouched.
    """
    return generate_atomically(Path(root), lambda path: _is_complete(path, seed, scenes),
                               lambda out: _generate(out, seed, scenes))


def generate_atomically(root: Path, is_complete: Callable[[Path], bool], generate: Callable[[Path], None]) -> Path:
    """Return ``root`` once ``is_complete(root)``; otherwise ``generate`` into a temporary sibling and rename it.

    Concurrent callers never see a half-written folder; ``is_complete`` may raise for a foreign folder.
    """
    if is_complete(root):
        return root
    if root.is_dir() and not any(root.iterdir()):
        with contextlib.suppress(OSError):  # a racing process may have just filled it
            root.rmdir()  # an empty folder holds nothing to lose
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        generate(tmp)
        try:
            os.rename(tmp, root)
        except OSError:
            if not is_complete(root):  # otherwise another process won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def save_preview(root: str | Path, out_png: str | Path, n: int = 8, scale: int = 3, scenes: SceneSet = DEMO) -> Path:
    """Write a grid of the first ``n`` val images beside their colourised masks (255 = white)."""
    root, out_png = Path(root), Path(out_png)
    lut = np.full((256, 3), 255, np.uint8)
    lut[: len(scenes.palette)] = np.array(scenes.palette, np.uint8)[:, ::-1]  # RGB -> BGR
    pairs = read_split(root / "splits" / "val.txt")[:n]
    if not pairs:
        raise DataError(f"{root / 'splits' / 'val.txt'} lists no images")
    gap = np.full((IMAGE_SIZE, 2, 3), 255, np.uint8)
    cells = []
    for image_rel, mask_rel in pairs:
        image = cv2.imread(str(root / image_rel), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(root / mask_rel), cv2.IMREAD_UNCHANGED)
        if image is None or mask is None:
            raise DataError(f"cannot read {root / image_rel} or {root / mask_rel}")
        cells.append(np.hstack([image, gap, lut[mask], gap, gap]))
    cols = math.ceil(math.sqrt(len(cells)))
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % cols)
    rows = [np.hstack(cells[i : i + cols]) for i in range(0, len(cells), cols)]
    grid = np.vstack([np.pad(r, ((0, 4), (0, 0), (0, 0)), constant_values=255) for r in rows])
    grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_png), grid):
        raise DataError(f"could not write {out_png}")
    return out_png


def render_image(seed: int, stream: int, index: int, scenes: SceneSet = DEMO) -> tuple[np.ndarray, np.ndarray]:
    """Render one scene of ``scenes``: an RGB ``uint8`` image (H, W, 3) and its ``uint8`` label map (H, W).

    ``stream`` is 0 for train and 1 for val images; ``index`` numbers the image in its split.
    """
    rng = np.random.default_rng([seed, scenes.stream_offset + stream, index])
    image = _background(rng)
    if scenes.clutter:
        _draw_clutter(image, rng)
    image, label = draw_objects(rng, image.astype(np.float32), scenes.objects_per_image, scenes)
    label[cv2.dilate(label, _CROSS) != cv2.erode(label, _CROSS)] = IGNORE
    return _photometric(rng, image), label


def draw_objects(rng: np.random.Generator, image: np.ndarray, count: tuple[int, int],
                 scenes: SceneSet = DEMO) -> tuple[np.ndarray, np.ndarray]:
    """Blend between ``count[0]`` and ``count[1]`` objects of ``scenes``' classes into the float ``image``;
    returns it and the labels."""
    label = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    instance = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.int32)
    areas: list[int] = []
    lo, hi = count
    for _ in range(rng.integers(lo, hi + 1)):
        cls = int(rng.integers(1, len(scenes.classes)))
        placed = _place_object(rng, scenes.classes[cls], instance, areas, scenes.object_size)
        if placed is None:
            continue
        mask, center, size = placed
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.6)[..., None]
        image = image * (1 - alpha) + _texture(rng, image, mask, center, size, scenes.hues[cls], scenes) * alpha
        areas.append(int(mask.sum()))
        instance[mask] = len(areas)
        label[mask] = cls
    return image, label


# --------------------------------------------------------------------------- dataset files


def read_meta(root: Path) -> dict | None:
    """The ``meta.json`` a generator writes last into its folder; None when missing or unreadable."""
    try:
        meta = json.loads((root / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _is_complete(root: Path, seed: int, scenes: SceneSet) -> bool:
    """True if ``root`` holds the current set ``scenes`` for ``seed``; DataError if it holds another."""
    if not root.exists():
        return False
    meta = read_meta(root)
    expected = {"name": scenes.name, "version": scenes.version, "counts": _counts()}
    if meta is None or any(meta.get(k) != v for k, v in expected.items()):
        raise DataError(
            f"{root} exists but is not a complete {scenes.name} dataset of version {scenes.version} "
            "(interrupted, outdated or another set); delete that folder and it will be regenerated"
        )
    if meta.get("seed") != seed:
        raise DataError(
            f"{root} holds the demo dataset for seed {meta.get('seed')}, not {seed}; delete it or use another folder"
        )
    return True


def _counts() -> dict[str, object]:
    return {"train": NUM_TRAIN, "val": NUM_VAL, "labeled": dict(DEMO_SPLITS)}


class _Progress:
    """``what: done/total images`` on stdout: once at the start, then at most every ``every_s`` seconds."""

    def __init__(self, what: str, total: int, every_s: float = 3.0) -> None:
        self.what, self.total, self.every_s, self.done = what, total, every_s, 0
        self.start = self.last = time.perf_counter()
        print(f"{what}: {total} images", flush=True)

    def step(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            eta = (now - self.start) / self.done * (self.total - self.done)
            print(f"{self.what}: {self.done}/{self.total} images, ETA {eta:.0f} s", flush=True)


def _generate(out: Path, seed: int, scenes: SceneSet) -> None:
    """Write the whole dataset into the (empty) folder ``out``; ``meta.json`` comes last."""
    (out / "JPEGImages").mkdir()
    (out / "SegmentationClass").mkdir()
    train_ids = [f"train_{i:06d}" for i in range(NUM_TRAIN)]
    val_ids = [f"val_{i:06d}" for i in range(NUM_VAL)]
    progress = _Progress(f"generating the {scenes.name} data set", NUM_TRAIN + NUM_VAL)
    for stream, ids in ((_TRAIN, train_ids), (_VAL, val_ids)):
        for index, image_id in enumerate(ids):
            progress.step()
            image, label = render_image(seed, stream, index, scenes)
            _write(
                out / "JPEGImages" / f"{image_id}.jpg",
                cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
            )
            _write(out / "SegmentationClass" / f"{image_id}.png", label, [])

    order = np.random.default_rng([seed, scenes.stream_offset + _SPLITS]).permutation(NUM_TRAIN)
    for split, n in DEMO_SPLITS.items():
        labeled = set(order[:n].tolist())
        _write_split(out / "splits" / split / "labeled.txt", [train_ids[i] for i in sorted(labeled)])
        if split != "all":
            unlabeled = [train_ids[i] for i in range(NUM_TRAIN) if i not in labeled]
            _write_split(out / "splits" / split / "unlabeled.txt", unlabeled)
    _write_split(out / "splits" / "val.txt", val_ids)

    meta = {
        "name": scenes.name,
        "version": scenes.version,
        "seed": seed,
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "classes": list(scenes.classes),
        "palette": [list(c) for c in scenes.palette],
        "ignore_index": IGNORE,
        "counts": _counts(),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _write(path: Path, array: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), array, params):
        raise DataError(f"could not write {path}")


def _write_split(path: Path, ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"JPEGImages/{i}.jpg SegmentationClass/{i}.png\n" for i in ids))


# --------------------------------------------------------------------------- rendering


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3).astype(np.float32)


def _class_colour(rng: np.random.Generator, class_hue: float) -> np.ndarray:
    """An RGB colour near the class's typical hue (w.p. CLASS_COLOUR_PROB), otherwise any colour."""
    if rng.random() >= CLASS_COLOUR_PROB:
        return _colour(rng)
    hue = (class_hue + rng.uniform(-20, 20)) % 360
    hsv = np.array([[[hue / 2, rng.uniform(130, 255), rng.uniform(120, 255)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _scalar(rng: np.random.Generator) -> tuple[float, float, float]:
    """A random colour as the tuple that OpenCV drawing functions take."""
    r, g, b = _colour(rng).tolist()
    return (r, g, b)


def _field(rng: np.random.Generator, low_res: int) -> np.ndarray:
    """A smooth random field in [0, 1]: a ``low_res``-square noise grid upsampled bicubically."""
    grid = rng.random((low_res, low_res), dtype=np.float32)
    field = cv2.resize(grid, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
    return np.clip(field, 0, 1)


def _axis(rng: np.random.Generator, origin: np.ndarray | None = None) -> np.ndarray:
    """Pixel coordinates (relative to ``origin``) projected on a random direction."""
    angle = rng.uniform(0, 2 * math.pi)
    ox, oy = (0.0, 0.0) if origin is None else origin
    return (_XX - ox) * math.cos(angle) + (_YY - oy) * math.sin(angle)


def _mix(c1: np.ndarray, c2: np.ndarray, t: np.ndarray) -> np.ndarray:
    return c1 + (c2 - c1) * t[..., None].astype(np.float32)


def _background(rng: np.random.Generator) -> np.ndarray:
    """A ``uint8`` background: gradient, smooth colour noise, stripes or a colour patchwork."""
    kind = rng.integers(4)
    c1, c2 = _colour(rng), _colour(rng)
    if kind == 0:  # linear gradient
        u = _axis(rng)
        bg = _mix(c1, c2, (u - u.min()) / (u.max() - u.min()))
    elif kind == 1:  # smooth colour noise
        low = int(rng.integers(2, 7))
        grid = rng.uniform(0, 255, (low, low, 3)).astype(np.float32)
        bg = cv2.resize(grid, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
    elif kind == 2:  # low-contrast stripes
        c2 = np.clip(c1 + rng.normal(0, 45, 3), 0, 255).astype(np.float32)
        period = rng.uniform(4, 16)
        bg = _mix(c1, c2, (_axis(rng) / period + rng.random()) % 1 < 0.5)
    else:  # patchwork of flat colour fields (Voronoi cells)
        seeds = rng.uniform(0, IMAGE_SIZE, (int(rng.integers(3, 7)), 2)).astype(np.float32)
        nearest = np.argmin((_XX[..., None] - seeds[:, 0]) ** 2 + (_YY[..., None] - seeds[:, 1]) ** 2, -1)
        bg = rng.uniform(0, 255, (len(seeds), 3)).astype(np.float32)[nearest]
    bg = bg + rng.normal(0, rng.uniform(0, 10), bg.shape).astype(np.float32)
    return np.clip(bg, 0, 255).astype(np.uint8)


def _draw_clutter(image: np.ndarray, rng: np.random.Generator) -> None:
    """Draw background distractors in place: thin lines, small blobs and text-like scribbles."""
    for _ in range(rng.integers(0, 5)):  # thin lines and bent polylines
        points = rng.uniform(-10, IMAGE_SIZE + 10, (int(rng.integers(2, 4)), 2))
        cv2.polylines(image, [np.round(points * 16).astype(np.int32)], False, _scalar(rng), 1, cv2.LINE_AA, 4)
    for _ in range(rng.integers(0, 5)):  # small irregular blobs
        k = int(rng.integers(5, 9))
        angles = np.sort(rng.uniform(0, 2 * math.pi, k))
        radii = rng.uniform(1.5, 4.5) * rng.uniform(0.4, 1.0, k)
        center = rng.uniform(0, IMAGE_SIZE, 2)
        points = center + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        cv2.fillPoly(image, [np.round(points * 16).astype(np.int32)], _scalar(rng), cv2.LINE_AA, 4)
    for _ in range(rng.integers(0, 3)):  # text-like scribbles
        text = "".join(rng.choice(list(_SCRIBBLE_CHARS), int(rng.integers(2, 6))))
        origin = (int(rng.integers(-10, IMAGE_SIZE - 10)), int(rng.integers(8, IMAGE_SIZE)))
        font = _FONTS[rng.integers(len(_FONTS))]
        cv2.putText(image, text, origin, font, float(rng.uniform(0.25, 0.45)), _scalar(rng), 1, cv2.LINE_AA)


def _polygon(points: np.ndarray) -> np.ndarray:
    mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask


def _ellipse(mask: np.ndarray, center: np.ndarray, axes: tuple[float, float], angle: float, value: int) -> None:
    c = tuple(int(round(v * 16)) for v in center)
    a = tuple(max(1, int(round(v * 16))) for v in axes)
    cv2.ellipse(mask, c, a, angle, 0, 360, value, -1, cv2.LINE_8, 4)


def _shape_mask(rng: np.random.Generator, name: str, center: np.ndarray, size: float) -> np.ndarray:
    """A binary mask of one shape ``name`` (a class of DEMO or PRETEXT), ``size`` pixels across, randomly posed."""
    r = size / 2
    angle = rng.uniform(0, 2 * math.pi)
    if name == "crescent":  # a disk with an offset disk cut out
        mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        _ellipse(mask, center, (r, r), 0, 1)
        offset = center + r * rng.uniform(0.35, 0.6) * np.array([math.cos(angle), math.sin(angle)])
        _ellipse(mask, offset, (r * 0.85, r * 0.85), 0, 0)
        return mask
    if name in ("disk", "ring"):
        mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        minor = r * rng.uniform(0.65 if name == "disk" else 0.75, 1.0)
        _ellipse(mask, center, (r, minor), math.degrees(angle), 1)
        if name == "ring":
            inner = min(rng.uniform(0.4, 0.65), (minor - 3) / minor)
            _ellipse(mask, center, (r * inner, minor * inner), math.degrees(angle), 0)
        return mask
    if name == "rectangle":
        w, h = r, r * rng.uniform(0.35, 1.0)
        local = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
    elif name == "hexagon":
        corners = np.arange(6) * math.pi / 3
        local = np.stack([np.cos(corners), np.sin(corners)], 1) * r
    elif name == "cross":  # a plus sign
        a, b = r, r / 2.8
        local = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b],
                          [-a, b], [-a, -b], [-b, -b]])
    elif name == "arrow":
        local = np.array([[-r, -r / 4], [r / 5, -r / 4], [r / 5, -r * 0.7], [r, 0], [r / 5, r * 0.7], [r / 5, r / 4],
                          [-r, r / 4]])
    elif name == "lshape":
        t = r * rng.uniform(0.35, 0.55)
        local = np.array([[-r, -r], [-r + t, -r], [-r + t, r - t], [r, r - t], [r, r], [-r, r]])
    elif name == "triangle":
        corners = np.arange(3) * 2 * math.pi / 3 + rng.uniform(-0.3, 0.3, 3)
        local = np.stack([np.cos(corners), np.sin(corners)], 1) * r * rng.uniform(0.95, 1.15, (3, 1))
        local[:, 1] *= rng.uniform(0.7, 1.0)
    elif name == "star":
        points = int(rng.integers(5, 7))
        corners = np.arange(2 * points) * math.pi / points
        radii = np.where(np.arange(2 * points) % 2 == 0, r, r * rng.uniform(0.4, 0.55))
        local = np.stack([np.cos(corners), np.sin(corners)], 1) * radii[:, None]
        local[:, 1] *= rng.uniform(0.8, 1.0)
    else:
        raise ValueError(f"no shape named {name!r}")
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return _polygon(local @ rotation.T + center)


def _place_object(
    rng: np.random.Generator, shape: str, instance: np.ndarray, areas: list[int], size_range: tuple[float, float],
    tries: int = 10
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Pose an object of a diameter in ``size_range`` so that it stays visible and hides at most half of any
    earlier object.

    Returns its boolean mask, centre and size, or None if no pose out of ``tries`` fits.
    """
    lo, hi = size_range
    for _ in range(tries):
        size = float(rng.uniform(lo, hi))
        center = rng.uniform(2, IMAGE_SIZE - 2, 2)
        mask = _shape_mask(rng, shape, center, size).astype(bool)
        if mask.sum() < MIN_VISIBLE_AREA:  # mostly outside the image
            continue
        if areas:
            visible = np.bincount(instance.ravel(), minlength=len(areas) + 1)[1:]
            hidden = np.bincount(instance[mask], minlength=len(areas) + 1)[1:]
            if np.any(visible - hidden < 0.5 * np.array(areas)):
                continue
        return mask, center, size
    return None


def _texture(
    rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, center: np.ndarray, size: float, class_hue: float,
    scenes: SceneSet
) -> np.ndarray:
    """A full-frame float texture for an object whose class hue is ``class_hue``, contrasting with ``image``
    under ``mask`` as ``scenes`` asks."""
    under = image[mask].mean(0)
    c1 = _class_colour(rng, class_hue)
    for _ in range(scenes.contrast_tries):
        if np.linalg.norm(c1 - under) >= scenes.min_contrast:
            break
        c1 = _class_colour(rng, class_hue)
    c2 = np.clip(c1 + rng.normal(0, 40, 3), 0, 255).astype(np.float32)
    kind = rng.integers(5)
    if scenes.solid_share and rng.random() < scenes.solid_share:
        kind = 0
    if kind == 0:  # solid
        tex = np.broadcast_to(c1, image.shape)
    elif kind == 1:  # stripes
        tex = _mix(c1, c2, (_axis(rng) / rng.uniform(2.5, 8) + rng.random()) % 1 < 0.5)
    elif kind == 2:  # checker
        cell = rng.uniform(2.5, 7)
        u, v = _axis(rng), _axis(rng)
        tex = _mix(c1, c2, (np.floor(u / cell) + np.floor(v / cell)) % 2)
    elif kind == 3:  # smooth noise
        tex = _mix(c1, c2, _field(rng, int(rng.integers(4, 16))))
    else:  # gradient across the object
        tex = _mix(c1, c2, np.clip(_axis(rng, center) / size + 0.5, 0, 1))
    return tex + rng.normal(0, rng.uniform(0, 12), image.shape).astype(np.float32)


def _photometric(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Mild global contrast/brightness change plus Gaussian noise; returns ``uint8``."""
    image = (image - 128) * rng.uniform(0.75, 1.25) + 128 + rng.uniform(-25, 25)
    image = image + rng.normal(0, rng.uniform(1, 6), image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
