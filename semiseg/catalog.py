"""The catalog check: a config's registered names and the requirements its plugins declare about themselves.

:mod:`semiseg.config` checks types and ranges and knows no plugin. This module knows every registered
method, encoder, dataset and named weights and what each declares: an encoder's ``head`` and
``input_multiple`` and named weights' ``backbone`` (registry facts), a method's ``needs_head`` /
``needs_head_when`` (class attributes). A plan runs it on
every cell, and the engine on every run, so an incompatible cell is rejected before anything starts.
"""

from __future__ import annotations

from typing import Any

from semiseg.config import RunConfig
from semiseg.data.datasets import DATASETS
from semiseg.errors import ConfigError
from semiseg.methods import METHODS
from semiseg.models import BACKBONES
from semiseg.models.registry import NAMED_WEIGHTS, crop_problem
from semiseg.sources import PUBLISHED_WEIGHTS
from semiseg.registry import Registry

#: config key → the registry its value must be registered in
NAMES: dict[str, Registry] = {"method": METHODS, "data.dataset": DATASETS, "model.backbone": BACKBONES}


def value_of(cfg: RunConfig, key: str) -> Any:
    """The value of dotted ``key`` (e.g. ``data.crop_size``) in ``cfg``."""
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _unknown_names(cfg: RunConfig) -> list[str]:
    return [f"key '{key}': unknown value {value_of(cfg, key)!r}; valid: {', '.join(registry.names())}"
            for key, registry in NAMES.items() if value_of(cfg, key) not in registry]


def _head_problem(cfg: RunConfig) -> str | None:
    method = METHODS.get(cfg.method)
    need, when = method.needs_head, method.needs_head_when
    head = BACKBONES.facts(cfg.model.backbone)["head"]
    if not need or head == need or (when and not value_of(cfg, when)):
        return None
    fits = ", ".join(n for n in BACKBONES.names() if BACKBONES.facts(n)["head"] == need)
    if when:
        return (f"key '{when}': true needs a {need} head (method '{cfg.method}'), but backbone "
                f"'{cfg.model.backbone}' builds {head}; use backbone {fits}, or set {when}=false")
    return (f"key 'model.backbone': method '{cfg.method}' needs a {need} head, but backbone "
            f"'{cfg.model.backbone}' builds {head}; use one of: {fits}")


def _weights_problem(cfg: RunConfig) -> str | None:
    name = cfg.model.pretrained
    if name in PUBLISHED_WEIGHTS and PUBLISHED_WEIGHTS[name].backbone != cfg.model.backbone:
        return (f"key 'model.pretrained': the published weights {name!r} are for backbone "
                f"'{PUBLISHED_WEIGHTS[name].backbone}', not '{cfg.model.backbone}'; set model.pretrained to "
                f"'{cfg.model.backbone}' if it names published weights, a weights file, or '' (random init)")
    if name not in NAMED_WEIGHTS or NAMED_WEIGHTS.facts(name)["backbone"] == cfg.model.backbone:
        return None
    return (f"key 'model.pretrained': the named weights {name!r} are for backbone "
            f"'{NAMED_WEIGHTS.facts(name)['backbone']}', not '{cfg.model.backbone}'; set model.pretrained to a "
            f"weights file of that encoder, or to '' (random init)")


def problems(cfg: RunConfig) -> list[str]:
    """Every catalog problem of ``cfg``, each naming the key, its value and what would work ([] = fine)."""
    unknown = _unknown_names(cfg)
    if unknown:
        return unknown
    found = (crop_problem(cfg.model.backbone, cfg.data.crop_size), _head_problem(cfg), _weights_problem(cfg))
    return [p for p in found if p]


def check(cfg: RunConfig) -> RunConfig:
    """``cfg`` itself when it passes the catalog check; else a :class:`ConfigError` naming every problem."""
    found = problems(cfg)
    if found:
        raise ConfigError("; ".join(found))
    return cfg
