"""The run-config schema: typed nested dataclasses, loaded from YAML and validated on load.

Validation here covers types, ranges and fixed choices only; registered names (methods, datasets, encoders)
and the requirements between keys are checked by :mod:`semiseg.catalog`, which knows the plugins.

A :class:`RunConfig` fully describes one training run (one *cell* of a grid). Everything except the
``runtime`` section (device, workers, where to write and track) defines the cell's identity, hashed
by :func:`config_hash` over the values that differ from the schema's defaults.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semiseg import workspace
from semiseg.errors import ConfigError


def _opt(default: Any, help: str, **rules: Any) -> Any:
    """A dataclass field with a help text and validation rules (choices, ge, le, gt, check)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **rules})
    return field(default=default, metadata={"help": help, **rules})


@dataclass
class DataConfig:
    dataset: str = _opt("demo", "dataset name (a registered dataset)")
    root: str = _opt("", "dataset root folder; empty = the dataset's default location")
    split: str = _opt("1_16", "labeled split name (folder under the dataset's splits)")
    crop_size: int = _opt(321, "square training crop size in pixels", ge=8)
    sup_nsample: int = _opt(
        0, "supervised only: upsample the labeled list to this many samples per epoch (V2); 0 = one pass (V1)", ge=0
    )
    scale_range: list[float] = _opt([0.5, 2.0], "random rescale range of the long side (official: 0.5–2.0)",
                                    check=lambda v: None if len(v) == 2 and 0 < v[0] <= v[1] else
                                    "it must be [low, high] with 0 < low <= high")
    mix_same_index: bool = _opt(
        False, "Style-A CutMix: mix batch uses the same image indices as the main batch (the official DDP quirk)"
    )
    mask_encoding: str = _opt(
        "index", "how masks are stored: 'index' = class ids 0..C-1 and 255 ignore (every official list, UniMatch "
        "V2's pre-reduced ADE20K); 'reduce_zero' = raw ids with 0 = unlabeled (raw ADEChallengeData2016), reduced "
        "on load (0 -> 255, id - 1); checked per mask so a reduction is never applied twice",
        choices=["index", "reduce_zero"])


@dataclass
class ModelConfig:
    backbone: str = _opt("resnet101", "encoder name (a registered backbone)")
    pretrained: str = _opt("", "path of an encoder weights file, published weights by name (resnet50, "
                                     "resnet101, xception, tv_resnet50, tv_resnet101, dinov2_small, dinov2_base, "
                                     "dinov2_large: fetched and verified on first use, see docs/data.md), or "
                                     "named weights generated on first use (demo_pretext: the tiny encoder "
                                     "pretrained on the demo's pretext shapes); empty = random init")
    output_stride: int = _opt(16, "encoder output stride", choices=[8, 16])
    aspp_dilations: list[int] = _opt([6, 12, 18], "ASPP atrous rates at output stride 16")
    lock_backbone: bool = _opt(False, "freeze the encoder and train the head only (V2 'frozen' runs)")


@dataclass
class OptimConfig:
    name: str = _opt("sgd", "optimizer", choices=["sgd", "adamw"])
    lr: float = _opt(0.001, "backbone learning rate", gt=0.0)
    lr_multi: float = _opt(10.0, "head learning-rate multiplier", gt=0.0)
    momentum: float = _opt(0.9, "SGD momentum", ge=0.0, le=1.0)
    weight_decay: float = _opt(1e-4, "weight decay (applied to every parameter)", ge=0.0)
    poly_power: float = _opt(0.9, "poly schedule power", ge=0.0)
    reference_batch: int = _opt(
        0, "global batch size (labeled images per step over all GPUs) at which optim.lr was tuned, e.g. 8 for "
           "UniMatch V1 on Pascal (2 per GPU x 4 GPUs); the LR actually used is scaled linearly to this run's "
           "global batch, train.gpus x train.batch_size x train.accum_steps (docs/methods.md §1.5); 0 = use "
           "optim.lr as given", ge=0)
    keep_global_batch: bool = _opt(
        True, "when the planner re-fits a recipe to another GPU count (run_grid --gpus N): keep the recipe's "
              "global batch with gradient accumulation, so the LR stays the paper's; false = keep the per-GPU "
              "batch and scale the LR linearly to the smaller global batch")


@dataclass
class LossConfig:
    criterion: str = _opt("ce", "labeled loss", choices=["ce", "ohem"])
    ohem_thresh: float = _opt(0.7, "OHEM probability threshold", ge=0.0, le=1.0)
    ohem_min_kept: int = _opt(200000, "OHEM minimum kept pixels", ge=1)
    conf_thresh: float = _opt(0.95, "pseudo-label confidence threshold τ", ge=0.0, le=1.0)


@dataclass
class TrainConfig:
    epochs: int = _opt(80, "number of epochs", ge=1)
    batch_size: int = _opt(2, "per-device batch size (labeled = unlabeled)", ge=1)
    gpus: int = _opt(1, "GPUs (data-parallel processes) the run uses; global batch = gpus x batch_size x "
                        "accum_steps", ge=1)
    sync_bn: bool = _opt(True, "with gpus > 1: SyncBatchNorm across processes (docs/methods.md §1.7: V1, V2, "
                               "CorrMatch, PrevMatch when W > 1)")
    accum_steps: int = _opt(
        1, "gradient accumulation: micro-batches of train.batch_size per optimizer step (losses scaled 1/K, as K "
           "more GPUs would average them); global batch = gpus x batch_size x accum_steps. EMA, snapshots and the "
           "poly LR advance per optimizer step; BatchNorm statistics (and CorrMatch's tau) per micro-batch", ge=1)
    amp: str = _opt("off", "autocast of the training steps (evaluation stays fp32): off = fp32 (torch's default, as "
                          "the official code); auto = bf16 where the device runs it natively (CUDA with bf16, a CPU "
                          "whose oneDNN uses AVX512_BF16/AMX), else fp32; bf16 everywhere (emulated, ~10x slower "
                          "on a CPU without native bf16: a warning says so); fp16 (with a GradScaler) on CUDA only, "
                          "a CPU run stays fp32. The resolved precision is logged as derived.amp",
                    choices=["off", "auto", "bf16", "fp16"])
    max_iters_per_epoch: int = _opt(0, "cap on iterations (micro-batches) per epoch; 0 = as defined by the data",
                                    ge=0)


@dataclass
class EvalConfig:
    """Validation protocol (docs/methods.md §1.6); the resolved protocol is logged as ``derived.eval_protocol``."""

    mode: str = _opt("auto", "evaluation protocol: whole image, central crop, or sliding windows; 'auto' = the "
                     "dataset's default (sliding_window for cityscapes, original elsewhere)",
                     choices=["auto", "original", "center_crop", "sliding_window"])
    crop_size: int = _opt(0, "window / center-crop size in pixels; 0 = data.crop_size", ge=0)
    stride: int = _opt(0, "sliding-window stride; 0 = int(2/3 of the window), as in every official repo", ge=0)
    window_rule: str = _opt("truncate", "sliding windows at the border: 'truncate' (V1, PrevMatch, CorrMatch: "
                            "smaller border windows) or 'shift' (UniMatch V2: windows shifted to stay full size)",
                            choices=["truncate", "shift"])
    multiple: int = _opt(0, "resize every network input bilinearly to the nearest multiple of this (UniMatch V2 "
                         "with DINOv2: 14) and its logits back; 0 = native size", ge=0)
    window_batch: int = _opt(4, "sliding windows of equal size predicted per forward pass", ge=1)
    center_crop_until_last: int = _opt(
        0, "evaluate with a central crop in every epoch but the last N, which use eval.mode (CorrMatch on "
        "Cityscapes: 20; its best mIoU mixes both protocols); 0 = eval.mode in every epoch", ge=0)
    every_n_epochs: int = _opt(1, "evaluate after every N-th epoch and after the last one (1 = every epoch, as "
                                  "the official code)", ge=1)
    report_model: str = _opt(
        "ema", "methods with an EMA teacher: the model whose mIoU is the reported best (and best.pth): 'ema' as "
        "the V2 README numbers, or 'student' as the official best.pth", choices=["ema", "student"])


@dataclass
class PrevMatchConfig:
    """PrevMatch's previous guidance (docs/methods.md §2.5); also read by ``semiovs_prevmatch``."""

    snapshot_on: str = _opt(
        "best_val", "when the student is stored as a snapshot: best_val = after an epoch whose val mIoU is a new "
        "best (the paper's rule; validation data then steers training), interval = every snapshot_interval epochs "
        "(validation-free)", choices=["best_val", "interval"])
    snapshot_interval: int = _opt(1, "snapshot_on=interval: store a snapshot after every N-th epoch", ge=1)
    max_len: int = _opt(0, "snapshot capacity, oldest dropped first; 0 = per dataset (ade20k/coco 5, else 8)", ge=0)
    base_only_epoch: int = _opt(-1, "no snapshot is stored before this epoch; -1 = per dataset (ade20k/coco 5, "
                                    "else 0)", ge=-1)
    num_models: int = _opt(3, "K: the largest number of snapshots in one iteration's ensemble", ge=1)
    random_select: bool = _opt(True, "draw the ensemble size k ~ U{1..K} every iteration (false: k = K)")
    conf_thresh: float = _opt(0.9, "τ_prev of the previous-guidance loss (conf_mode=pixelwise)", ge=0.0, le=1.0)
    conf_mode: str = _opt(
        "pixelwise", "previous-guidance loss: pixelwise (threshold τ_prev), pixelavg (the Cityscapes mode, "
        "faithful including its scaling bug) or pixelavg_fixed (per-image mean-confidence weights)",
        choices=["pixelwise", "pixelavg", "pixelavg_fixed"])


@dataclass
class CorrMatchConfig:
    """CorrMatch (docs/methods.md §2.6): adaptive threshold and region propagation."""

    thresh_init: float = _opt(0.85, "initial value of the adaptive global threshold τ_g", ge=0.0, le=1.0)
    thresh_momentum: float = _opt(0.999, "momentum of the τ_g update", ge=0.0, le=1.0)
    num_regions: int = _opt(128, "correlation rows sampled as region maps per iteration", ge=1)


@dataclass
class SemiOVSConfig:
    """SemiOVS (docs/methods.md §2.7): the out-of-distribution stream with precomputed pseudo-labels."""

    ood_root: str = _opt("", "folder of OOD images and pseudo-label masks (see semiseg ood --help); "
                             "empty = the dataset's built-in companion (demo only: <data root>_ood)")
    ood_list: str = _opt("ood.txt", "list of '<image> <mask>' lines, paths relative to ood_root; the list path "
                                    "itself is absolute or relative to ood_root")
    ood_lambda: float = _opt(1.0, "λ: weight of the OOD loss (config key 'lambda' of the official code)", ge=0.0)


@dataclass
class EMAConfig:
    """The EMA teacher of the V2 methods (docs/methods.md §2.4)."""

    decay: float = _opt(0.996, "maximum EMA ratio: α = min(1 − 1/(it+1), decay)", ge=0.0, le=1.0)


@dataclass
class UniMatchV2Config:
    comp_drop: bool = _opt(True, "Complementary Dropout on the DPT inputs of the strong stream (needs a DPT model)")


@dataclass
class SpeedConfig:
    """Speed options (issue 16). All off by default, so the paper recipes run as the official code runs them;
    each is a named switch per grid or cell, with its measured effect in docs/speed.md. Like every section but
    ``runtime``, they are part of the cell's identity (they change the numerics, at least at rounding level)."""

    tf32: bool = _opt(False, "CUDA: TF32 tensor cores for fp32 matmuls (cuDNN convolutions use TF32 either way, "
                             "torch's default, as in the official code)")
    channels_last: bool = _opt(False, "channels-last (NHWC) memory format for the model and its image inputs "
                                      "(convolutional encoders and heads)")
    compile: bool = _opt(False, "torch.compile the model (the first steps are slower while it compiles)")
    optimizer_impl: str = _opt("default", "optimizer kernels: default (torch's choice), foreach (multi-tensor) or "
                                          "fused (one kernel; CUDA and CPU)", choices=["default", "foreach", "fused"])
    sync_every: int = _opt(1, "check the loss for NaN/inf (a host-device sync) every N iterations and at the "
                              "epoch end instead of before each backward; the logged terms are summed on the "
                              "device and read at the epoch end and before mid-epoch checkpoints", ge=1)
    stop_check_every: int = _opt(1, "with gpus > 1: agree on a stop request (an all-reduce) every N iterations "
                                    "and at each epoch end instead of every iteration (a stop waits up to N-1 "
                                    "steps)", ge=1)


@dataclass
class RuntimeConfig:
    """Where and how to run; not part of the config hash."""

    device: str = _opt("auto", "device", choices=["auto", "cpu", "cuda"])
    num_workers: int = _opt(
        -1, "data-loader worker processes per loader (persistent, >= 4 batches in flight); -1 = auto: the CPUs this "
        "process may use divided by (loaders x processes on the machine), at most 8; 0 = load in the training process",
        ge=-1)
    threads: int = _opt(0, "torch CPU threads; 0 = torch default", ge=0)
    output_dir: str = field(default_factory=lambda: str(workspace.path("runs")), metadata={
        "help": "folder for checkpoints and logs (one sub-folder per run hash); default runs/ in the workspace"})
    tracking_uri: str = field(default_factory=workspace.default_tracking_uri, metadata={
        "help": f"MLflow tracking URI; default ${workspace.TRACKING_VARIABLE}, else sqlite:///mlflow.db in the "
                f"workspace", "check": lambda v: tracking_uri_problem(v)})
    experiment: str = _opt("semiseg", "MLflow experiment name",
                           check=lambda v: None if v.strip() else "it is empty; give the experiment a name")
    checkpoint_every_iters: int = _opt(
        0, "also write last.pth every N iterations inside an epoch (long epochs on preemptible jobs); 0 = per epoch",
        ge=0)
    log_checkpoints: str = _opt(
        "off", "log checkpoints as MLflow artifacts of the run when it finishes (a remote tracking server then holds "
        "the model): off, best = best.pth, all = best.pth and last.pth", choices=["off", "best", "all"])
    alert_behind: float = _opt(
        0.0, "val mIoU points behind the official curve of the cell (runs imported with 'semiseg reference import') "
        "that count as falling behind; 0 = no comparison", ge=0)
    alert_patience: int = _opt(3, "evaluations in a row behind by runtime.alert_behind before the alert", ge=1)
    alert_stop: bool = _opt(True, "on the alert, stop the run after tagging it (KILLED, resumable by a relaunch); "
                                  "false = only tag it (semiseg.alert)")


#: URI schemes of the MLflow stores a run can be tracked in (a database, a tracking server, a file store).
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")


def tracking_uri_problem(uri: str) -> str | None:
    """Why MLflow cannot track in ``uri``; None when its scheme is one MLflow serves (a plain path is a file store)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if not uri.strip():
        return "it is empty; e.g. sqlite:///mlflow.db"
    if scheme and scheme not in TRACKING_SCHEMES:
        return (f"MLflow has no store for scheme {scheme!r}; use one of {', '.join(TRACKING_SCHEMES)}, "
                f"e.g. sqlite:///mlflow.db or http://127.0.0.1:5000")
    return None


@dataclass
class RunConfig:
    method: str = _opt("unimatch", "training method (a registered method)")
    seed: int = _opt(0, "seed for every random number generator", ge=0)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    unimatch_v2: UniMatchV2Config = field(default_factory=UniMatchV2Config)
    prevmatch: PrevMatchConfig = field(default_factory=PrevMatchConfig)
    corrmatch: CorrMatchConfig = field(default_factory=CorrMatchConfig)
    semiovs: SemiOVSConfig = field(default_factory=SemiOVSConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotated type ``tp``; ints are accepted (and stored) as floats."""
    origin = typing.get_origin(tp)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"key '{key}': expected {_type_name(tp)}, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        as_number = tp is str and isinstance(value, (int, float)) and not isinstance(value, bool)
        hint = " (YAML read it as a number: quote it, e.g. '1_32')" if as_number else ""
        if tp is str and isinstance(value, bool):
            hint = " (YAML read it as true/false: quote it)"
        raise ConfigError(f"key '{key}': expected {_type_name(tp)}, got {value!r} ({type(value).__name__}){hint}")
    return float(value) if tp is float else value


def _check_rules(value: Any, meta: dict, key: str) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"key '{key}': unknown value {value!r}; valid: {', '.join(map(str, choices))}")
    problem = meta["check"](value) if "check" in meta else None
    if problem is not None:
        raise ConfigError(f"key '{key}': invalid value {value!r}; {problem}")
    for rule, test, word in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                             ("le", lambda a, b: a <= b, "<=")):
        if rule in meta and not test(value, meta[rule]):
            raise ConfigError(f"key '{key}': value {value!r} is out of range; it must be {word} {meta[rule]}")


@functools.lru_cache(maxsize=None)
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field]]:
    """(type hints, fields by name) of a config dataclass; cached, as resolving hints is slow."""
    return typing.get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        where = f"section '{prefix[:-1]}'" if prefix else "the config"
        raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
    hints, fields = _schema(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(
                f"unknown key '{prefix}{key}'{hint}; valid keys here: {', '.join(prefix + f for f in fields)}"
            )
    kwargs = {}
    for name, f in fields.items():
        if name not in data:
            continue
        tp = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build_section(tp, data[name], key + ".")
        else:
            value = data[name]
            if tp is str and isinstance(value, bool) and "off" in f.metadata.get("choices", ()):
                value = "on" if value else "off"  # YAML 1.1 reads a bare off/on (no/yes) as false/true
            value = _coerce(value, tp, key)
            _check_rules(value, f.metadata, key)
            kwargs[name] = value
    return cls(**kwargs)


_SECTIONS: dict[tuple, Any] = {}


def _build_section(cls: type, data: Any, prefix: str) -> Any:
    """:func:`_build` of one config section, memoised on its content: a grid's cells share most sections,
    so validating each distinct section once makes planning 10,000 cells fast. Returns a private copy."""
    if not isinstance(data, dict):
        return _build(cls, data, prefix)  # reports the error
    key = (cls, prefix, repr(data))  # the same content in the same key order hits the cache
    if key not in _SECTIONS:
        _SECTIONS[key] = _build(cls, data, prefix)
    section = copy.copy(_SECTIONS[key])
    for name in _schema(cls)[1]:
        value = getattr(section, name)
        if isinstance(value, list):
            setattr(section, name, list(value))
    return section


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a plain (YAML-loaded) mapping."""
    return _build(RunConfig, data, "")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` (value in YAML syntax) into (["a", "b", "c"], value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.epochs=10")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``key`` ``"a.b"``, creating missing sections."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"'{part}' is not a section")
    node[last] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted ``key=value`` overrides applied."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        try:
            set_dotted(out, ".".join(path), value)
        except ConfigError as exc:
            raise ConfigError(f"override {text!r}: {exc}") from None
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (safe types only); errors name the file, and a key given twice is one (with its line)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not a UTF-8 text file (byte {exc.object[exc.start]:#04x} at "
                          f"offset {exc.start}); a YAML config must be UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path} ({exc.strerror or exc})") from None
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader rejects NUL and other control characters
        node = loader.get_single_node()
        if node is not None:
            _reject_duplicate_keys(node, "", path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping of keys, got {type(data).__name__}")
    return data


def _reject_duplicate_keys(node: yaml.Node, prefix: str, path: Path) -> None:
    """YAML keeps the last of two equal keys silently; here a key given twice in one mapping is an error."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{prefix[:-1]}[{i}].", path)
    elif isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            line = key_node.start_mark.line + 1
            if key in lines:
                raise ConfigError(f"config file {path}: key '{prefix}{key}' appears twice (line {lines[key]} and "
                                  f"line {line}); keep one of them")
            lines[key] = line
            _reject_duplicate_keys(value_node, f"{prefix}{key}.", path)


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load, override and validate a run config from a YAML file; errors name the file."""
    data = load_yaml(path)
    if not data:  # an empty file would silently train the full default recipe
        raise ConfigError(f"config file {path} is empty; a run config names at least its method and data, e.g. "
                          f"one written by run_grid into runs/<experiment>/<hash>/config.yaml")
    data = apply_overrides(data, overrides or [])
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def global_batch(cfg: RunConfig) -> int:
    """Labeled images per optimizer step over all GPUs and accumulated micro-batches."""
    return cfg.train.gpus * cfg.train.batch_size * cfg.train.accum_steps


def effective_lr(cfg: RunConfig) -> float:
    """The backbone LR actually used: ``optim.lr`` scaled linearly from ``optim.reference_batch`` to the run's
    global batch (docs/methods.md §1.5: e.g. lr 1e-3 tuned for 8 images per step becomes 5e-4 at 4); unscaled when
    ``reference_batch`` is 0."""
    ref = cfg.optim.reference_batch
    return cfg.optim.lr if ref == 0 else cfg.optim.lr * global_batch(cfg) / ref


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts (like ``dataclasses.asdict``, faster for large grids)."""
    out = {}
    for name in _schema(type(cfg))[1]:
        value = getattr(cfg, name)
        if hasattr(value, "__dataclass_fields__"):
            out[name] = config_to_dict(value)
        else:
            out[name] = list(value) if isinstance(value, list) else value
    return out


def identity_dict(cfg: RunConfig) -> dict[str, Any]:
    """The part of the config that defines the run's identity: everything but ``runtime``, without the values
    at their schema default. A new option whose default keeps the old behaviour therefore leaves every existing
    cell's hash (finished runs, checkpoints) unchanged; changing an existing default is a breaking change."""
    data = _non_default(config_to_dict(cfg), _default_dict())
    data.pop("runtime", None)
    return data


@functools.lru_cache(maxsize=1)
def _default_dict() -> dict[str, Any]:
    return config_to_dict(RunConfig())


def _non_default(data: dict[str, Any], default: dict[str, Any]) -> dict[str, Any]:
    """``data`` without the entries equal to ``default``'s (recursively; sections left empty are dropped)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = _non_default(value, default.get(key, {}))
            if value:
                out[key] = value
        elif key not in default or value != default[key]:
            out[key] = value
    return out


def _digest(data: dict[str, Any]) -> str:
    """Hex SHA-256 of canonical JSON (sorted keys, no spaces, ASCII): the same data hashes the same everywhere."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def config_hash(cfg: RunConfig) -> str:
    """Stable content hash (hex SHA-256) of the config's identity; same config → same hash everywhere."""
    return _digest(identity_dict(cfg))


def recipe_hash(cfg: RunConfig) -> str:
    """Hash of the identity without the seed: the runs of one recipe over several seeds share it."""
    data = identity_dict(cfg)
    data.pop("seed", None)
    return _digest(data)


def short_hash(cfg: RunConfig) -> str:
    return config_hash(cfg)[:10]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys (``{'a': {'b': 1}}`` → ``{'a.b': 1}``)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def _sections() -> dict[str, type]:
    """The nested sections of the schema, by name."""
    hints, fields = _schema(RunConfig)
    return {name: hints[name] for name in fields if dataclasses.is_dataclass(hints[name])}


def schema_sections() -> list[str]:
    """The config's sections: ``run`` (the top-level keys: method, seed) and each nested section."""
    return ["run", *_sections()]


def describe_schema(section: str | None = None) -> str:
    """Every key of the schema (or of one ``section``) with its type, default, rules and help text."""
    fields, nested = _schema(RunConfig)[1], _sections()
    if section is not None and section not in nested and section != "run":
        raise ConfigError(f"unknown config section {section!r}; valid: {', '.join(schema_sections())}")
    blocks = []
    if section in (None, "run"):
        blocks.append(("run (top-level keys)", "", RunConfig, [n for n in fields if n not in nested]))
    for name, cls in nested.items():
        if section in (None, name):
            blocks.append((name, f"{name}.", cls, list(_schema(cls)[1])))
    lines = []
    for title, prefix, cls, names in blocks:
        doc = "" if cls is RunConfig or (cls.__doc__ or "").startswith(cls.__name__ + "(") else cls.__doc__ or ""
        lines.append(f"[{title}]" + (f"  {doc.strip().splitlines()[0]}" if doc.strip() else ""))
        sub_hints, sub_fields = _schema(cls)
        for key in names:
            f = sub_fields[key]
            meta = f.metadata
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            rules = [f"one of {', '.join(map(str, meta['choices']))}"] if "choices" in meta else []
            rules += [f"{word} {meta[r]}" for r, word in (("ge", ">="), ("gt", ">"), ("le", "<=")) if r in meta]
            lines.append(f"  {prefix}{key}: {_type_name(sub_hints[key])} = {json.dumps(default)}"
                         + (f"  ({'; '.join(rules)})" if rules else ""))
            if meta.get("help"):
                lines.append(f"      {meta['help']}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
