"""The encoder registry, weight loading and the model factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from semiseg.errors import ConfigError
from semiseg.registry import Registry
from semiseg.sources import PUBLISHED_WEIGHTS

#: name → factory(output_stride: int) returning an encoder. A DeepLabV3+ encoder's forward gives (c1, c4) and
#: it exposes ``low_channels`` and ``high_channels`` (and optionally ``head_widths``); an encoder with
#: ``head = "dpt"`` (DINOv2) gets the DPT head. ``convert_pretrained(state) -> (state, ignored keys)``, when an
#: encoder defines it, maps an official weights file onto the encoder's names.
#: Facts an encoder declares (read by :mod:`semiseg.catalog`): its ``head`` and the ``input_multiple`` its input
#: sides must be.
BACKBONES: Registry = Registry("backbone", head="deeplabv3plus", input_multiple=1)


def _read_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ConfigError(f"model.pretrained: cannot load {path} as a PyTorch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # our weights files, and the official layout of some encoders
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConfigError(f"model.pretrained: {path} does not hold a state dict (name → tensor)")
    return state


@dataclass(frozen=True)
class NamedWeights:
    """Weights that ``model.pretrained`` may name instead of a file: made on first use by training ``run`` (a
    run config, untracked) on ``threads`` CPU threads and keeping its ``part``; cached by the run assembly
    (:func:`semiseg.runtime.ensure_named_weights`). Bump ``version`` when the recipe changes."""

    name: str
    description: str
    version: int
    run: dict = field(hash=False)
    part: str = "backbone"
    threads: int = 2

    @property
    def file_name(self) -> str:
        return f"{self.run['model']['backbone']}_{self.name}_v{self.version}.pth"


#: name → :class:`NamedWeights`. Fact: the ``backbone`` the weights are for.
NAMED_WEIGHTS: Registry = Registry("named weights", backbone="")


def register_named(spec: NamedWeights) -> NamedWeights:
    NAMED_WEIGHTS.register(spec.name, backbone=spec.run["model"]["backbone"])(spec)
    return spec


#: The demo's stand-in for ImageNet pretraining (see :mod:`semiseg.pretext`): the tiny DeepLabV3+ trained fully
#: supervised on all 768 ``demo_pretext`` images (other shapes, hues and random streams than the demo's), whole
#: 64-px images, 20 epochs in fp32 (bf16 is emulated, 10x slower, on a CPU without native bf16; fp32 weights
#: are the same bit for bit on CPUs of the same capability and oneDNN ISA, made on 2 threads).
DEMO_PRETEXT = register_named(NamedWeights(
    "demo_pretext", "the tiny encoder pretrained on the demo's disjoint pretext shapes", version=5, run={
        "method": "supervised",
        "seed": 0,
        "data": {"dataset": "demo_pretext", "split": "all", "crop_size": 64, "scale_range": [1.0, 1.0]},
        "model": {"backbone": "tiny", "output_stride": 8, "aspp_dilations": [2, 4, 6]},
        "optim": {"name": "adamw", "lr": 0.004, "lr_multi": 1.0, "weight_decay": 0.01},
        "train": {"epochs": 20, "batch_size": 8, "amp": "off"},
    }))


def load_pretrained(module: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a local weights file into the encoder ``module`` and report what did not line up.

    The file's keys go through the encoder's ``convert_pretrained`` (official names → ours; keys the
    official code also discards are returned as ``ignored``), then load non-strictly. Returns
    ``{"missing", "unexpected", "ignored"}`` key lists (BN ``num_batches_tracked`` counters are not
    weights and never count as missing). A file whose tensors do not fit (a shape mismatch, or no key in
    common) raises :class:`ConfigError` naming the file and the first offending keys.
    """
    path = weights_file(str(path))
    state = _read_state(path)
    convert = getattr(module, "convert_pretrained", None)
    state, ignored = convert(state) if convert is not None else (state, [])
    own = module.state_dict()
    mismatched = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    common = [k for k in state if k in own]
    if mismatched or not common:
        detail = ("; ".join(mismatched[:5]) if mismatched
                  else f"no parameter names in common, e.g. file has {list(state)[:3]}")
        raise ConfigError(f"model.pretrained: {path} does not match the {type(module).__name__} encoder ({detail})")
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    return {"missing": missing, "unexpected": list(result.unexpected_keys), "ignored": list(ignored)}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def crop_problem(backbone: str, crop_size: int) -> str | None:
    """Why ``data.crop_size`` does not suit ``backbone`` (its declared ``input_multiple``); None when it does."""
    multiple = BACKBONES.facts(backbone)["input_multiple"]
    if crop_size % multiple == 0:
        return None
    return (f"key 'data.crop_size': {crop_size} is not a multiple of {multiple}, which backbone '{backbone}' "
            f"needs (e.g. {multiple * max(1, round(crop_size / multiple))})")


def weights_file(pretrained: str) -> Path:
    """The weights file ``model.pretrained`` names as a path (named weights are the run assembly's to make:
    :func:`semiseg.runtime.resolve_weights`)."""
    if pretrained in NAMED_WEIGHTS or pretrained in PUBLISHED_WEIGHTS:
        raise ConfigError(f"model.pretrained: {pretrained!r} names weights the run assembly makes or fetches "
                          f"(semiseg.runtime.resolve_weights); pass the file it returns")
    path = Path(pretrained).expanduser().resolve()
    if not path.is_file():
        raise ConfigError(f"model.pretrained: weights file {path} does not exist (give a weights file, one of the "
                          f"published weights: {', '.join(PUBLISHED_WEIGHTS)}, or one of the named weights: "
                          f"{', '.join(NAMED_WEIGHTS.names())})")
    return path


def build_model(cfg, num_classes: int, corr: bool = False, weights: Path | None = None) -> nn.Module:
    """The segmentation network for run config ``cfg``: DeepLabV3+ or, for DINOv2 encoders, DPT.

    Loads ``weights`` (the file ``model.pretrained`` names, resolved by the run assembly:
    :func:`semiseg.runtime.resolve_weights`; by default the file ``model.pretrained`` gives) into the encoder
    (printing the key report) and freezes the encoder when ``model.lock_backbone`` is set. ``corr`` adds
    CorrMatch's correlation branch to DeepLabV3+ (a method asks for it via ``Method.model_kwargs``).
    """
    from semiseg.models.deeplabv3plus import DeepLabV3Plus
    from semiseg.models.dpt import DPT

    problem = crop_problem(cfg.model.backbone, cfg.data.crop_size)
    if problem:
        raise ConfigError(problem)
    encoder = BACKBONES.get(cfg.model.backbone)(cfg.model.output_stride)
    if weights is None and cfg.model.pretrained:
        weights = weights_file(cfg.model.pretrained)
    if weights is not None:
        report = load_pretrained(encoder, weights)
        print(f"loaded {cfg.model.pretrained}: " + ", ".join(
            f"{len(v)} {k}" + (f" {v[:5]}" if v else "") for k, v in report.items()), flush=True)
    if cfg.model.lock_backbone:
        encoder.requires_grad_(False)
    if getattr(encoder, "head", "deeplabv3plus") == "dpt":
        if corr:
            raise ConfigError(f"method '{cfg.method}' needs a DeepLabV3+ encoder; '{cfg.model.backbone}' builds DPT")
        return DPT(encoder, num_classes)
    return DeepLabV3Plus(encoder, num_classes, tuple(cfg.model.aspp_dilations), corr=corr)
