"""The demo's out-of-distribution companion for SemiOVS: shape scenes with other scene statistics.

Where the demo (:mod:`semiseg.data.demo`) has gradient/noise/stripe/patchwork backgrounds and 2–6
class objects, the OOD scenes look like "indoor" views: a few large flat, muted wall/floor bands, a
colour cast, lower contrast, 0–3 class objects and 1–4 *distractor* objects of shapes that are not demo
classes (hexagons, crosses: background, like the COCO things that are not VOC classes). The masks stand
in for an open-vocabulary model's pseudo-labels: an oracle one, so they are exact, and like OVS masks
they hold no 255 pixels. Layout (the SemiOVS OOD format, see ``python -m semiseg.ood --help``)::

    root/images/<id>.jpg          RGB images
    root/pseudo_labels/<id>.png   uint8 class indices 0..5, no ignore value
    root/ood.txt                  "images/<id>.jpg pseudo_labels/<id>.png" per line
    root/meta.json                written last: marks the set complete
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from semiseg.data import demo
from semiseg.errors import DataError

NUM_OOD = 768
OOD_VERSION = 3  # 3: the demo v5 objects (larger, clearer)
_OOD_STREAM = 7  # generator stream, distinct from the demo's train/val/split streams


def ensure_demo_ood(root: str | Path, seed: int = 0) -> Path:
    """Return ``root`` holding the complete OOD companion set for ``seed``, generating it (atomically) if absent."""
    return demo.generate_atomically(Path(root), lambda path: _is_complete(path, seed), lambda out: _generate(out, seed))


def render_ood_image(seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One OOD scene: an RGB ``uint8`` image and its ``uint8`` label map (no 255)."""
    rng = np.random.default_rng([seed, _OOD_STREAM, index])
    image = _indoor_background(rng)
    for _ in range(rng.integers(1, 5)):
        _draw_distractor(rng, image)
    image, label = demo.draw_objects(rng, image, (0, 3))
    image = (image - 110) * rng.uniform(0.5, 0.8) + 110 + rng.uniform(-40, 0)  # darker, low contrast
    image = image * rng.uniform(0.8, 1.2, 3) + rng.normal(0, rng.uniform(2, 8), image.shape)  # colour cast, noise
    return np.clip(image, 0, 255).astype(np.uint8), label


def _indoor_background(rng: np.random.Generator) -> np.ndarray:
    """Two to four flat, muted horizontal bands (wall, floor, …) with a faint vertical shading."""
    size = demo.IMAGE_SIZE
    cuts = np.sort(rng.integers(size // 5, size - size // 5, int(rng.integers(1, 4))))
    image = np.empty((size, size, 3), np.float32)
    for top, bottom in zip([0, *cuts], [*cuts, size]):
        grey = rng.uniform(60, 190)
        image[top:bottom] = grey + rng.normal(0, 15, 3)
    shade = np.linspace(rng.uniform(-20, 0), rng.uniform(0, 20), size, dtype=np.float32)[:, None, None]
    return image + shade


def _draw_distractor(rng: np.random.Generator, image: np.ndarray) -> None:
    """Paint a hexagon or a cross (not a demo class: it stays background) in a random flat colour, in place."""
    center = rng.uniform(0, demo.IMAGE_SIZE, 2)
    r = rng.uniform(5.5, 15.0)
    angle = rng.uniform(0, 2 * math.pi)
    if rng.random() < 0.5:  # hexagon
        corners = angle + np.arange(6) * math.pi / 3
        points = center + r * np.stack([np.cos(corners), np.sin(corners)], 1)
    else:  # cross: a plus sign of arm width r/2.5
        a, b = r, r / 2.5
        local = np.array([[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b],
                          [-a, b], [-a, -b], [-b, -b]])
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        points = local @ rotation.T + center
    mask = demo._polygon(points).astype(bool)
    image[mask] = rng.uniform(0, 255, 3).astype(np.float32)


def _expected_meta(seed: int) -> dict:
    return {"name": "demo_ood", "version": OOD_VERSION, "seed": seed, "count": NUM_OOD}


def _is_complete(root: Path, seed: int) -> bool:
    if not root.exists():
        return False
    if demo.read_meta(root) != _expected_meta(seed):
        raise DataError(f"{root} exists but is not the complete demo OOD set (version {OOD_VERSION}, seed {seed}); "
                        "delete that folder and it will be regenerated")
    return True


def _generate(out: Path, seed: int) -> None:
    (out / "images").mkdir()
    (out / "pseudo_labels").mkdir()
    lines = []
    for index in range(NUM_OOD):
        image, label = render_ood_image(seed, index)
        name = f"ood_{index:06d}"
        demo._write(out / "images" / f"{name}.jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, demo.JPEG_QUALITY])
        demo._write(out / "pseudo_labels" / f"{name}.png", label, [])
        lines.append(f"images/{name}.jpg pseudo_labels/{name}.png\n")
    (out / "ood.txt").write_text("".join(lines))
    (out / "meta.json").write_text(json.dumps(_expected_meta(seed), indent=2) + "\n")
