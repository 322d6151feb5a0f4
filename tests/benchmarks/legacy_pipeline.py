"""The train/val sample pipeline as it was before issue 16 (commit 52f018b), kept only so that
``bench_pipeline.py`` can time it side by side with today's, and tests can check today's against it. Its strong
colour view (OpenCV hue and blur, torchvision's tensor jitter) is also the worker's colour before issue 26, and
:func:`device_colour` the device's colour before issue 26 (one image at a time, blur and hue in torch).

Workers returned normalised float32 images and int64 masks; the rescale used OpenCV's ``INTER_LINEAR``
and ``INTER_NEAREST``. Decoding, cropping, flipping and CutMix boxes are today's (unchanged since).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from semiseg.data import transforms as T
from semiseg.data.datasets import SegDataset


def random_rescale(img, mask, rng, ratio=(0.5, 2.0)):
    h, w = mask.shape
    long_side = max(h, w)
    new_long = int(rng.integers(int(long_side * ratio[0]), int(long_side * ratio[1]) + 1))
    if h > w:
        oh, ow = new_long, int(w * new_long / h + 0.5)
    else:
        oh, ow = int(h * new_long / w + 0.5), new_long
    img = cv2.resize(img, (ow, oh), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(mask, (ow, oh), interpolation=cv2.INTER_NEAREST)
    return img, mask


def adjust_hue(t, factor):
    rgb = t.permute(1, 2, 0).numpy().astype(np.float32) * (1 / 255)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = np.mod(hsv[..., 0] + factor * 360.0, 360.0)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255 + 0.5
    return torch.from_numpy(np.clip(out, 0, 255).astype(np.uint8)).permute(2, 0, 1)


def strong_colour(img, rng):
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
    if rng.random() < 0.8:
        factors = {
            "brightness": rng.uniform(0.5, 1.5),
            "contrast": rng.uniform(0.5, 1.5),
            "saturation": rng.uniform(0.5, 1.5),
            "hue": rng.uniform(-0.25, 0.25),
        }
        for name in rng.permutation(list(factors)):
            t = adjust_hue(t, float(factors[name])) if name == "hue" else getattr(TF, f"adjust_{name}")(
                t, float(factors[name]))
    if rng.random() < 0.2:
        t = TF.rgb_to_grayscale(t, num_output_channels=3)
    out = t.permute(1, 2, 0).numpy()
    if rng.random() < 0.5:
        sigma = rng.uniform(0.1, 2.0)
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return out


def device_colour(w: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The device path's strong views before issue 26: per image, torchvision's tensor ops, Gaussian blur with
    OpenCV's kernel size (commit 60b632f)."""
    views = []
    for t, p in zip(w, params.tolist()):
        if p[0]:
            for op in p[5:9]:
                name = ("brightness", "contrast", "saturation", "hue")[int(op)]
                t = getattr(TF, f"adjust_{name}")(t, p[1 + int(op)])
        if p[9]:
            t = TF.rgb_to_grayscale(t, num_output_channels=3)
        if p[10]:
            k = round(p[11] * 6 + 1) | 1
            t = TF.gaussian_blur(t, [k, k], [p[11], p[11]])
        views.append(t)
    return torch.stack(views)


def to_long(mask):
    return torch.from_numpy(np.ascontiguousarray(mask)).long()


class LegacySegDataset(SegDataset):
    """``SegDataset.__getitem__`` of commit 52f018b."""

    def _normalize(self, img):
        return T.normalize(img, np.asarray(self.norm[0], np.float32), np.asarray(self.norm[1], np.float32))

    def __getitem__(self, item):
        if self.mode == "val":
            img, mask = self._load(item)
            return {"img": self._normalize(img), "mask": to_long(mask), "index": item}
        index, seed = item
        rng = np.random.default_rng(seed)
        img, mask = self._load(index)
        img, mask = random_rescale(img, mask, rng, self.scale_range)
        pad = T.PAD_SENTINEL if self.mode == "train_u" else T.IGNORE
        img, mask = T.pad_and_crop(img, mask, self.crop_size, rng, mask_pad=pad)
        img, mask = T.random_hflip(img, mask, rng)
        if self.mode == "train_l":
            return {"img": self._normalize(img), "mask": to_long(mask)}
        if self.mode == "train_u_ood":
            ign = np.where(mask == T.IGNORE, T.IGNORE, 0).astype(np.uint8)
            return {"w": self._normalize(img), "mask": to_long(np.where(ign == T.IGNORE, 0, mask)),
                    "s1": self._normalize(strong_colour(img, rng)),
                    "s2": self._normalize(strong_colour(img, rng)), "ign": to_long(ign)}
        ign = np.where(mask == T.PAD_SENTINEL, T.IGNORE, 0).astype(np.uint8)
        s1 = strong_colour(img, rng)
        box1 = T.cutmix_box(self.crop_size, rng)
        s2 = strong_colour(img, rng)
        box2 = T.cutmix_box(self.crop_size, rng)
        return {"w": self._normalize(img), "s1": self._normalize(s1), "s2": self._normalize(s2),
                "ign": to_long(ign), "box1": torch.from_numpy(box1).bool(), "box2": torch.from_numpy(box2).bool()}
