"""Train-time augmentations of docs/methods.md §1.2, on OpenCV/numpy arrays, driven by an explicit RNG.

Every random draw takes a ``numpy.random.Generator`` so a sample's augmentation depends only on the
seed handed to it (see :mod:`semiseg.data.sampling`), never on worker scheduling. The strong colour view
is split into drawing its parameters (:func:`draw_colour`, in the worker) and applying them: with PIL in the
worker (:func:`colour_pil`, the official code's own functions) or, batched, on the training device
(:func:`apply_colour`, Pillow's arithmetic in torch: see :mod:`semiseg.data.device`); both give the same pixels.
Resizing reproduces the official PIL pipeline (masks exactly, images within one grey level).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF_PIL
from PIL import Image, ImageFilter

from semiseg.constants import IGNORE as IGNORE  # re-exported: T.IGNORE
from semiseg.constants import IMAGENET_MEAN, IMAGENET_STD
from semiseg.data import colour

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)
STD = np.array(IMAGENET_STD, dtype=np.float32)
#: Mask value marking crop padding of unlabeled images (becomes 255 in the ignore mask).
PAD_SENTINEL = 254


def random_rescale(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                   ratio: tuple[float, float] = (0.5, 2.0)) -> tuple[np.ndarray, np.ndarray]:
    """Rescale so the long side becomes randint(0.5·L, 2.0·L) (inclusive), keeping the aspect ratio."""
    h, w = mask.shape
    long_side = max(h, w)
    new_long = int(rng.integers(int(long_side * ratio[0]), int(long_side * ratio[1]) + 1))
    if h > w:
        oh, ow = new_long, int(w * new_long / h + 0.5)
    else:
        oh, ow = int(h * new_long / w + 0.5), new_long
    return resize_image(img, oh, ow), resize_mask(mask, oh, ow)


def resize_mask(mask: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """PIL ``NEAREST`` exactly: source pixel floor((x + 0.5)·s), i.e. OpenCV's ``INTER_NEAREST_EXACT``
    (plain ``INTER_NEAREST`` samples floor(x·s) and shifts labels by up to 1 px)."""
    return cv2.resize(mask, (ow, oh), interpolation=cv2.INTER_NEAREST_EXACT)


def resize_image(img: np.ndarray, oh: int, ow: int) -> np.ndarray:
    """PIL ``BILINEAR`` within one grey level (uint8 HxWx3).

    PIL widens the triangle filter's support by the scale factor when it shrinks an axis (antialiasing);
    OpenCV's ``INTER_LINEAR`` does not (up to 65 levels off). Torch's uint8 ``antialias=True`` bilinear kernel
    is PIL's algorithm, so it serves any shrinking axis; pure upscaling keeps the faster ``INTER_LINEAR``,
    which equals PIL there up to rounding.
    """
    h, w = img.shape[:2]
    if oh >= h and ow >= w:
        return cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR)
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    out = F.interpolate(t, size=(oh, ow), mode="bilinear", align_corners=False, antialias=True)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())


def pad_and_crop(img: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator,
                 mask_pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad right/bottom to at least ``size`` (image 0, mask ``mask_pad``), then random-crop size×size."""
    h, w = mask.shape
    ph, pw = max(size - h, 0), max(size - w, 0)
    if ph or pw:
        img = cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        mask = cv2.copyMakeBorder(mask, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=mask_pad)
    h, w = mask.shape
    x = int(rng.integers(0, w - size + 1))
    y = int(rng.integers(0, h - size + 1))
    return img[y:y + size, x:x + size], mask[y:y + size, x:x + size]


def random_hflip(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if rng.random() < 0.5:
        return img[:, ::-1], mask[:, ::-1]
    return img, mask


#: Layout of a strong view's colour parameters (:func:`draw_colour`): jitter on?, its four factors (brightness,
#: contrast, saturation, hue), the order of the four jitter operations, grayscale on?, blur on?, blur sigma.
COLOUR_PARAMS = 12
_PIL_JITTER = (TF_PIL.adjust_brightness, TF_PIL.adjust_contrast, TF_PIL.adjust_saturation, TF_PIL.adjust_hue)
_TORCH_JITTER = (colour.brightness, colour.contrast, colour.saturation, colour.hue)


def draw_colour(rng: np.random.Generator) -> np.ndarray:
    """The random part of the strong colour view (float64, :data:`COLOUR_PARAMS` values): ColorJitter(0.5, 0.5,
    0.5, 0.25) w.p. 0.8 with torchvision's random order, grayscale w.p. 0.2, Gaussian blur w.p. 0.5 with
    sigma ~ U(0.1, 2.0). Unused entries are 0; the draws are the same, in the same order, as applying them."""
    p = np.zeros(COLOUR_PARAMS)
    if rng.random() < 0.8:
        p[0] = 1
        p[1:5] = [rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(-0.25, 0.25)]
        p[5:9] = rng.permutation(4)
    p[9] = rng.random() < 0.2
    if rng.random() < 0.5:
        p[10], p[11] = 1, rng.uniform(0.1, 2.0)
    return p


def colour_pil(img: np.ndarray, params: np.ndarray) -> np.ndarray:
    """The strong colour view of a uint8 HxWx3 image with :func:`draw_colour`'s ``params``, made as the official
    code makes it: torchvision's PIL functions and PIL's ``GaussianBlur(radius=sigma)`` on a PIL image."""
    p = [float(v) for v in params]
    out = Image.fromarray(np.ascontiguousarray(img))
    if p[0]:
        for op in p[5:9]:
            out = _PIL_JITTER[int(op)](out, p[1 + int(op)])
    if p[9]:
        out = TF_PIL.rgb_to_grayscale(out, num_output_channels=3)
    if p[10]:
        out = out.filter(ImageFilter.GaussianBlur(radius=p[11]))
    return np.asarray(out)


def apply_colour(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The strong colour views of a uint8 N x 3 x H x W batch (any device) with per-image :func:`draw_colour`
    ``params`` (N x :data:`COLOUR_PARAMS`): Pillow's arithmetic in torch (:mod:`semiseg.data.colour`), so equal to
    :func:`colour_pil` pixel for pixel. Each operation runs once per step on the images that take it."""
    p = torch.as_tensor(params).detach().to("cpu", torch.float64).reshape(-1, COLOUR_PARAMS)
    x = x.clone()

    def rows(sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = sel.nonzero().flatten()
        return index, index.to(x.device)

    for step in range(4):
        for op, fn in enumerate(_TORCH_JITTER):
            cpu, dev = rows((p[:, 0] > 0) & (p[:, 5 + step] == op))
            if len(cpu):
                x[dev] = fn(x[dev], p[cpu, 1 + op].to(x.device))
    cpu, dev = rows(p[:, 9] > 0)
    if len(cpu):
        x[dev] = colour.grayscale(x[dev])
    cpu, dev = rows(p[:, 10] > 0)
    if len(cpu):
        x[dev] = colour.gaussian_blur(x[dev], p[cpu, 11].tolist())
    return x


def strong_colour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The strong colour view of a uint8 HxWx3 image (docs/methods.md §1.2): :func:`draw_colour`, then
    :func:`colour_pil`."""
    return colour_pil(img, draw_colour(rng))


def cutmix_box(size: int, rng: np.random.Generator, p: float = 0.5,
               area: tuple[float, float] = (0.02, 0.4), ratio: tuple[float, float] = (0.3, 1 / 0.3)) -> np.ndarray:
    """The official CutMix box mask (docs/methods.md §1.2), size×size uint8: all zero w.p. 1-p, else one box of
    U(2%,40%) area."""
    mask = np.zeros((size, size), dtype=np.uint8)
    if rng.random() > p:
        return mask
    target = rng.uniform(*area) * size * size
    while True:
        r = rng.uniform(*ratio)
        bw, bh = int(np.sqrt(target / r)), int(np.sqrt(target * r))
        x, y = int(rng.integers(0, size)), int(rng.integers(0, size))
        if x + bw <= size and y + bh <= size:
            break
    mask[y:y + bh, x:x + bw] = 1
    return mask


def to_chw(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 array → contiguous uint8 CHW tensor (normalised on the training device)."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def to_tensor(mask: np.ndarray) -> torch.Tensor:
    """uint8 HxW array → contiguous uint8 tensor (255 = ignore; int64 on the training device)."""
    return torch.from_numpy(np.ascontiguousarray(mask))


def normalize(img: np.ndarray, mean: np.ndarray = MEAN, std: np.ndarray = STD) -> torch.Tensor:
    """uint8 HxWx3 RGB → float CHW tensor: scaled to [0, 1], then (x - mean) / std (ImageNet by default)."""
    arr = (img.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
