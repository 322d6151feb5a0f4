"""Named experiments: YAML grids expanded into concrete, validated, hashed run configs (cells).

An experiment file ``experiments/<name>.yaml`` holds::

    description: one line
    inherit: other_experiment        # optional: start from that experiment's settings
    defaults: {...}                  # a partial run config (semiseg.config schema)
    grid:                            # axes; every combination is a cell
      method: [supervised, unimatch]
      split: ['1_32', '1_8']
      seed: [0]
    overrides:                       # partial configs applied to matching cells, in order
      - when: {method: supervised}   # axes not in the grid match the value set in defaults
        set: {train: {batch_size: 16}}
    exclude:                         # cells to drop (all given axes must match)
      - {method: fixmatch, split: '1_8'}
    official: {file: ../UniMatch/configs/pascal.yaml, gpus: 4}   # optional: start from an official config
    search:                          # optional: hyperparameter space for launch/tune.py (experiments/search.py)
      loss.conf_thresh: {grid: [0.9, 0.95]}
    slurm: {time_min: 600}           # optional: SLURM resources over the cluster profile (launch/slurm.py)

A name is looked up in the workspace's ``experiments/`` folder first (:mod:`semiseg.workspace`), then among
the built-in grids, so a workspace file can ``inherit`` a built-in paper grid (and a workspace file named like a
built-in one may inherit it). ``load_experiment`` also accepts the path of an experiment file.

Files whose name starts with ``_`` (e.g. ``_paper.yaml``, the official recipes of docs/methods.md §1.5) are abstract
bases: they are only inherited from, never listed or run.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semiseg.experiments.search import SearchDim, parse_block
from semiseg import catalog, workspace
from semiseg.config import RunConfig, apply_overrides, config_from_dict, config_hash, load_yaml, set_dotted
from semiseg.errors import ConfigError

EXPERIMENTS_DIR = Path(__file__).resolve().parent
#: grid axis → dotted config key
AXES = {"method": "method", "dataset": "data.dataset", "split": "data.split", "backbone": "model.backbone",
        "seed": "seed"}
TOP_KEYS = {"description", "inherit", "official", "defaults", "grid", "overrides", "exclude", "search",
            "slurm"}


class UnknownExperiment(ConfigError):
    """No experiment file of that name (an MLflow experiment may still have runs under it)."""


@dataclass
class Experiment:
    name: str
    description: str
    defaults: dict[str, Any]
    grid: dict[str, list[Any]]
    overrides: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    search: dict[str, SearchDim] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)
    path: str = ""


@dataclass
class Cell:
    """One concrete run of an experiment."""

    axes: dict[str, Any]
    config: RunConfig
    hash: str

    @property
    def short(self) -> str:
        return self.hash[:10]


def list_experiments() -> list[str]:
    """Names of the runnable experiments, the workspace's and the built-in ones (abstract bases, ``_*``, left out)."""
    return [n for n in workspace.yaml_names([workspace.experiments_dir(), EXPERIMENTS_DIR]) if not n.startswith("_")]


def find_experiment_file(name: str, inherited_by: Path | None = None) -> Path | None:
    """The file of experiment ``name``: the workspace's ``experiments/<name>.yaml``, else the built-in one;
    ``inherited_by`` (the inheriting file) is passed over, so a workspace ``demo.yaml`` can inherit the
    built-in ``demo``."""
    return workspace.find_yaml(name, [workspace.experiments_dir(), EXPERIMENTS_DIR], skip=inherited_by)


def _copy(data: Any) -> Any:
    """Copy of YAML data (dicts, lists, scalars): ``copy.deepcopy`` without its memo overhead."""
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = _copy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = _copy(value)
    return out


def load_experiment(name: str, _seen: tuple[str, ...] = (), _child: Path | None = None) -> Experiment:
    """Load experiment ``name`` (:func:`find_experiment_file`) or a ``.yaml`` path, following ``inherit``;
    errors name the file and key."""
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        path: Path | None = Path(name).resolve()
        name = path.stem
    else:
        path = find_experiment_file(name, _child)
    if path is None:
        raise UnknownExperiment(f"unknown experiment {name!r} (looked in {workspace.experiments_dir()} and the "
                                f"built-in grids); available: {', '.join(list_experiments())}")
    if str(path.resolve()) in _seen:
        raise ConfigError(f"{path}: inheritance cycle {' -> '.join(Path(p).stem for p in _seen + (str(path),))}")
    data = load_yaml(path)
    if not data:
        raise ConfigError(f"{path}: the experiment file is empty; it needs at least a 'grid' (or 'inherit')")
    _check_layout(path, data)
    if "inherit" in data:
        parent = load_experiment(data["inherit"], _seen + (str(path.resolve()),), path)
        base_defaults, grid, slurm = parent.defaults, dict(parent.grid), parent.slurm
        overrides, exclude, search = list(parent.overrides), list(parent.exclude), dict(parent.search)
    else:
        base_defaults, grid, overrides, exclude, search, slurm = {}, {}, [], [], {}, {}
    for axis, values in (data.get("grid") or {}).items():
        if axis not in AXES:
            raise ConfigError(f"{path}: unknown grid axis {axis!r}; valid: {', '.join(AXES)}")
        if isinstance(values, dict):
            raise ConfigError(f"{path}: grid axis {axis!r} must be a list of values (or one value), got {values!r}")
        grid[axis] = values if isinstance(values, list) else [values]
        if values is None or not grid[axis]:
            raise ConfigError(f"{path}: grid axis {axis!r} is empty; give it at least one value or leave it out")
    for rule in data.get("overrides") or []:
        if not isinstance(rule, dict) or set(rule) - {"when", "set"} or not isinstance(rule.get("set"), dict):
            raise ConfigError(f"{path}: each override needs 'set' (a partial config) and optional 'when', got {rule!r}")
        _check_axes(path, rule.get("when") or {})
        overrides.append(rule)
    for rule in data.get("exclude") or []:
        _check_axes(path, rule)
        exclude.append(rule)
    if "search" in data:
        search.update(parse_block(data["search"], str(path)))
    if "official" in data:
        base_defaults = _merge(base_defaults, _official_defaults(path, data["official"]))
    return Experiment(name, data.get("description", ""), _merge(base_defaults, data.get("defaults") or {}), grid,
                      overrides, exclude, search, {**slurm, **(data.get("slurm") or {})}, str(path))


#: top-level key → (accepted type, the rule) of the experiment file's own layout
_LAYOUT = {"description": (str, "must be a string"),
           "inherit": (str, "must name an experiment (the workspace's or a built-in one)"),
           "defaults": (dict, "must be a partial run config (a mapping)"),
           "grid": (dict, "must map axes to lists of values"),
           "overrides": (list, "must be a list of {when, set} rules"),
           "exclude": (list, "must be a list of {axis: value} rules"),
           "slurm": (dict, "must map resource keys to values")}


def _check_layout(path: Path, data: dict[str, Any]) -> None:
    """The file's top-level keys and their types (the sections' contents are checked where they are read)."""
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(TOP_KEYS))}")
    for key, (kind, rule) in _LAYOUT.items():
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise ConfigError(f"{path}: '{key}' {rule}, got {data[key]!r}")


def _official_defaults(path: Path, spec: Any) -> dict[str, Any]:
    """``official: {file: PATH, gpus: N}``: an official repo's YAML config converted to ours (PATH relative to
    the experiment file)."""
    from semiseg.experiments.official import load_official

    gpus = spec.get("gpus", 0) if isinstance(spec, dict) else None
    whole = isinstance(gpus, int) and not isinstance(gpus, bool) and gpus >= 0
    if not isinstance(spec, dict) or "file" not in spec or set(spec) - {"file", "gpus"} or not whole:
        raise ConfigError(f"{path}: 'official' must be {{file: PATH, gpus: N}} with N a whole number >= 0, "
                          f"got {spec!r}")
    file = Path(str(spec["file"])).expanduser()
    return load_official(file if file.is_absolute() else path.parent / file, int(spec.get("gpus", 0)))


def _check_axes(path: Path, rule: Any) -> None:
    if not isinstance(rule, dict) or set(rule) - set(AXES):
        raise ConfigError(f"{path}: a rule must map grid axes ({', '.join(AXES)}) to values, got {rule!r}")


def _matches(rule: dict[str, Any], axes: dict[str, Any]) -> bool:
    def ok(want: Any, have: Any) -> bool:
        return have in want if isinstance(want, list) else have == want

    return all(ok(want, axes.get(axis)) for axis, want in rule.items())


def refit_gpus(data: dict[str, Any], gpus: int) -> dict[str, Any]:
    """A cell's config re-fitted to ``gpus`` GPUs. With ``optim.keep_global_batch`` (the default) the recipe's
    global batch G = gpus x batch_size x accum_steps is kept: per-GPU batch b' <= the recipe's (memory) and
    accumulation k' with gpus x b' x k' = G, so the LR stays the recipe's. Otherwise only ``train.gpus``
    changes and the LR follows the linear scaling rule (``optim.reference_batch``)."""
    train = data.setdefault("train", {})
    batch, accum = int(train.get("batch_size", 2)), int(train.get("accum_steps", 1))
    total = int(train.get("gpus", 1)) * batch * accum
    train["gpus"] = gpus
    if not (data.get("optim") or {}).get("keep_global_batch", True):
        return data
    if total % gpus:
        raise ConfigError(f"--gpus {gpus}: the recipe's global batch of {total} images does not split over {gpus} "
                          f"GPUs; use a divisor of {total}, or --set optim.keep_global_batch=false to scale the LR")
    per_gpu = total // gpus
    train["batch_size"] = max(b for b in range(1, min(batch, per_gpu) + 1) if per_gpu % b == 0)
    train["accum_steps"] = per_gpu // train["batch_size"]
    return data


def expand(exp: Experiment, only: dict[str, list[Any]] | None = None, sets: list[str] | None = None,
           runtime: dict[str, Any] | None = None, gpus: int | None = None) -> list[Cell]:
    """All cells of ``exp``: the grid product, minus excludes, restricted by ``only``, with overrides, then
    (``gpus``) re-fitted to that many GPUs (:func:`refit_gpus`).

    Every cell passes the catalog check (:mod:`semiseg.catalog`); otherwise one :class:`ConfigError` names each
    incompatible cell and its problems."""
    if not exp.grid:
        raise ConfigError(f"experiment {exp.name!r} has no grid (an abstract base to inherit from); "
                          f"runnable experiments: {', '.join(list_experiments())}")
    grid = dict(exp.grid)
    for axis, values in (only or {}).items():
        grid[axis] = values
    axes_names = list(grid)
    cells, excluded = [], 0
    for combo in itertools.product(*(grid[a] for a in axes_names)):
        axes = dict(zip(axes_names, combo))
        data = _copy(exp.defaults)
        for axis, value in axes.items():
            set_dotted(data, AXES[axis], value)
        view = {axis: _get_dotted(data, key) for axis, key in AXES.items()}  # grid values + defaults
        if any(_matches(rule, view) for rule in exp.exclude):
            excluded += 1
            continue
        for rule in exp.overrides:
            if _matches(rule.get("when") or {}, view):
                data = _merge(data, rule["set"])
        if sets:
            data = apply_overrides(data, sets)
        if gpus:
            data = refit_gpus(data, gpus)
        data = _merge(data, {"runtime": {"experiment": exp.name, **(runtime or {})}})
        try:
            cfg = config_from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"experiment {exp.name!r}, cell {_where(axes)}: {exc}") from None
        cells.append(Cell(axes, cfg, config_hash(cfg)))
    if not cells and excluded:
        raise ConfigError(f"{exp.path or exp.name}: the exclude rules drop all {excluded} selected cell(s) (it "
                          f"excludes every cell); check 'exclude' and the selection (--methods, --splits)")
    rejected = [(cell, found) for cell in cells for found in [catalog.problems(cell.config)] if found]
    if rejected:
        raise ConfigError(f"experiment {exp.name!r}: {len(rejected)} of {len(cells)} cells fail the catalog check:\n"
                          + "\n".join(f"  cell {cell.short} {_where(cell.axes)}: {'; '.join(found)}"
                                       for cell, found in rejected))
    return cells


def _where(axes: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in axes.items())


def _get_dotted(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data
