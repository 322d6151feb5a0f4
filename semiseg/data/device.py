"""The device side of the input pipeline: a loader batch (uint8, see :class:`~semiseg.data.datasets.SegDataset`)
becomes what methods and evaluation consume: normalised float32 images, int64 masks, bool CutMix boxes.

On CUDA the copies (from the loader's pinned memory, non-blocking) and the work run in a side stream that
the compute stream then waits for; on CPU the same function runs inline. Strong views whose colour
parameters were drawn in the worker (``c1``/``c2``) are made here from the weak view, batched, with the same
pixels as the worker's PIL path (:func:`~semiseg.data.transforms.apply_colour`).
"""

from __future__ import annotations

from functools import cache

import torch

from semiseg.data.transforms import apply_colour

#: (mean, std) per RGB channel of images scaled to [0, 1].
Norm = tuple[tuple[float, ...], tuple[float, ...]]
IMAGENET: Norm = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IMAGES = ("img", "w", "s1", "s2")
MASKS = ("mask", "ign")
BOXES = ("box1", "box2")
#: colour-parameter key → the strong view it makes
COLOUR = {"c1": "s1", "c2": "s2"}


@cache
def _stats(norm: Norm, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = (torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1).to(device) for v in norm)
    return mean, std


@cache
def _side_stream(device: torch.device) -> torch.cuda.Stream:
    return torch.cuda.Stream(device)


def normalize(img: torch.Tensor, norm: Norm) -> torch.Tensor:
    """uint8 N×3×H×W → float32 ``(x / 255 - mean) / std``: the same float32 operations, in the same order, as
    :func:`semiseg.data.transforms.normalize`, so the values are bit-identical on CPU."""
    mean, std = _stats(norm, img.device)
    return (img.float() / 255 - mean) / std


def _prepare(batch: dict, device: torch.device, norm: Norm, channels_last: bool) -> dict:
    out = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) and k not in COLOUR else v
           for k, v in batch.items()}
    for key, view in COLOUR.items():
        if key in out:
            params = out.pop(key)
            out[view] = apply_colour(out["w"], params)
    for k, v in out.items():
        if not torch.is_tensor(v) or v.dtype != torch.uint8:
            continue
        if k in IMAGES:
            out[k] = normalize(v, norm)
            if channels_last:
                out[k] = out[k].contiguous(memory_format=torch.channels_last)
        elif k in MASKS:
            out[k] = v.long()
        elif k in BOXES:
            out[k] = v.bool()
    return out


def to_device(batch: dict, device: torch.device, norm: Norm = IMAGENET, channels_last: bool = False) -> dict:
    """The batch on ``device``, ready for a method or evaluation (float or already-converted tensors pass as is);
    ``channels_last`` (``speed.channels_last``): the normalised images in NHWC memory format."""
    if device.type != "cuda":
        return _prepare(batch, device, norm, channels_last)
    stream, main = _side_stream(device), torch.cuda.current_stream(device)
    with torch.cuda.stream(stream):
        out = _prepare(batch, device, norm, channels_last)
    main.wait_stream(stream)
    for v in out.values():
        if torch.is_tensor(v):
            v.record_stream(main)
    return out


def loader_norm(loader) -> Norm:
    """The normalisation of a loader's dataset (:attr:`SegDataset.norm`); ImageNet's for other iterables."""
    return getattr(getattr(loader, "dataset", None), "norm", IMAGENET)
