"""Search spaces over run-config keys, from an experiment's ``search:`` block or ``--param`` strings.

YAML block (in ``experiments/<name>.yaml``)::

    search:
      loss.conf_thresh: {grid: [0.8, 0.9, 0.95]}   # every value, once per sample
      optim.lr: {loguniform: [0.001, 0.01]}          # log-uniform between the bounds
      train.batch_size: {choice: [4, 8]}             # one value at random
      loss.ohem_thresh: {uniform: [0.6, 0.8]}        # uniform between the bounds
      seed: {randint: [0, 9]}                        # integer, bounds included

Command line (``launch/tune.py --param``): ``KEY=LOW:HIGH`` (uniform), ``KEY=log:LOW:HIGH``,
``KEY=int:LOW:HIGH``, ``KEY=choice:A,B,...`` and ``KEY=grid:A,B,...``; values are YAML scalars.
This module only describes and validates spaces; the tuner turns them into its own objects.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from semiseg.config import config_from_dict, set_dotted
from semiseg.errors import ConfigError

KINDS = ("grid", "choice", "uniform", "loguniform", "randint")
RANGE_KINDS = ("uniform", "loguniform", "randint")
CLI_FORMS = "LOW:HIGH, log:LOW:HIGH, int:LOW:HIGH, choice:A,B,... or grid:A,B,..."


@dataclass(frozen=True)
class SearchDim:
    """One searched config key: ``kind`` and its ``values`` (the candidates, or [low, high])."""

    key: str
    kind: str
    values: tuple[Any, ...]

    def describe(self) -> str:
        if self.kind in RANGE_KINDS:
            return f"{self.kind}[{self.values[0]}, {self.values[1]}]"
        return f"{self.kind}{{{', '.join(map(str, self.values))}}}"


def _dim(key: str, kind: str, values: Any, where: str) -> SearchDim:
    if kind not in KINDS:
        raise ConfigError(f"{where}: unknown search kind {kind!r} for {key!r}; valid: {', '.join(KINDS)}")
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{where}: {key!r} needs a non-empty list of values for {kind!r}, got {values!r}")
    if kind in RANGE_KINDS:
        ok = len(values) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if not ok or not values[0] < values[1] or (kind == "loguniform" and values[0] <= 0):
            raise ConfigError(f"{where}: {key!r} {kind} needs two numbers LOW < HIGH"
                              f"{' (LOW > 0)' if kind == 'loguniform' else ''}, got {values!r}")
        if kind == "randint" and not all(isinstance(v, int) for v in values):
            raise ConfigError(f"{where}: {key!r} randint needs integer bounds, got {values!r}")
    return SearchDim(key, kind, tuple(values))


def parse_block(block: Any, where: str) -> dict[str, SearchDim]:
    """Parse an experiment's ``search:`` mapping (``key: {kind: values}``)."""
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: 'search' must map config keys to {{kind: values}}, got {block!r}")
    dims = {}
    for key, spec in block.items():
        if not isinstance(spec, dict) or len(spec) != 1:
            raise ConfigError(f"{where}: search key {key!r} needs exactly one of {', '.join(KINDS)}, e.g. "
                              f"{{grid: [0.9, 0.95]}}; got {spec!r}")
        ((kind, values),) = spec.items()
        dims[str(key)] = _dim(str(key), kind, values, where)
    return dims


def _scalar(text: str) -> Any:
    """A YAML scalar; numbers YAML 1.1 leaves as strings (``1e-4``) become floats."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text.strip()
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def parse_param(text: str) -> SearchDim:
    """Parse one ``--param KEY=SPEC`` (see the module docstring for the forms)."""
    where = f"--param {text!r}"
    if "=" not in text:
        raise ConfigError(f"{where} must look like KEY=SPEC with SPEC one of {CLI_FORMS}")
    key, spec = (part.strip() for part in text.split("=", 1))
    head, _, rest = spec.partition(":")
    if head in ("choice", "grid"):
        values = [_scalar(v) for v in rest.split(",") if v.strip()]
        return _dim(key, head, values, where)
    kind = {"log": "loguniform", "int": "randint"}.get(head)
    bounds = rest.split(":") if kind else spec.split(":")
    values = [_scalar(b) for b in bounds]
    if len(values) != 2:
        raise ConfigError(f"{where}: SPEC must be one of {CLI_FORMS}")
    return _dim(key, kind or "uniform", values, where)


def validate(dims: dict[str, SearchDim], base: dict[str, Any]) -> None:
    """Check that every choice (or both bounds of a range) of every key makes a valid config on ``base``."""
    for dim in dims.values():
        if dim.key.split(".")[0] == "runtime":
            raise ConfigError(f"search key {dim.key!r}: runtime settings are not searchable")
        for value in dim.values:
            data = copy.deepcopy(base)
            try:
                set_dotted(data, dim.key, value)
                config_from_dict(data)
            except ConfigError as exc:
                raise ConfigError(f"search key {dim.key!r} ({dim.describe()}): {exc}") from None
