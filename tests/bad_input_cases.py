"""The bad-input corpus: one row per bad input, for ``tests/test_bad_inputs.py``.

A case is one command-line call (``entry`` + ``argv``, ``{d}`` = the case's fresh folder) after ``setup(d)``
has written its files; it must exit with ``rc`` (2 = user error) without a traceback, print every one of
``fragments`` (the file/key/value at fault and what is valid, or the warning), and leave ``d`` as ``writes``
says: ``none`` (unchanged), ``failed_run`` (only a FAILED MLflow run with the error and run-folder notes, no
checkpoint) or ``any`` (an accepted input: anything, but no run left RUNNING). ``xfail`` names the owner and
the defect of a case another engineer fixes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bad_input_data import (DROP, EXPERIMENT, SIZE, TRAIN, folder_data, merge, pair, run_config, write_image,
                            write_lists, write_mask, write_yaml)

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    id: str
    kind: str
    entry: str
    argv: list[str]
    fragments: tuple[str, ...]
    setup: Callable[[Path], None] | None = None
    rc: int = 2
    writes: str = "none"
    store: bool = False  # an empty MLflow store at d/mlflow.db before the call (in-process cases)
    runs: tuple = ()  # (experiment, run) pairs logged into that store first (tracking.log_runs_batch)
    subprocess: bool = False  # a real process of its own (workers, signals, import-time failures)
    xfail: str = ""

    def args(self, d: Path) -> list[str]:
        return [a.replace("{d}", str(d)) for a in self.argv]


CASES: list[Case] = []


def add(*cases: Case) -> None:
    CASES.extend(cases)


def _chain(*steps: Callable[[Path], None] | None) -> Callable[[Path], None]:
    def run(d: Path) -> None:
        for step in steps:
            if step is not None:
                step(d)
    return run


def write(rel: str, content: str | bytes) -> Callable[[Path], None]:
    def run(d: Path) -> None:
        path = d / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    return run


def remove(rel: str) -> Callable[[Path], None]:
    return lambda d: (d / rel).unlink()


RANDOM_BYTES = np.random.default_rng(17).integers(0, 256, 2048, dtype=np.uint8).tobytes()

# --------------------------------------------------------------------------- train: config file, --set, --tag


def train(id: str, kind: str, fragments: tuple[str, ...], edits: dict | None = None, *, text: str | None = None,
          method: str = "supervised", setup=None, extra: list[str] = (), writes: str = "none", **kw) -> Case:
    """``python -m semiseg.train --config {d}/run.yaml`` on the small folder dataset, with ``edits`` (dotted keys)
    or the raw ``text`` as the config; data errors record a FAILED run, so they start with an empty store."""
    def prepare(d: Path) -> None:
        folder_data(d)
        if text is not None:
            (d / "run.yaml").write_text(text.replace("{d}", str(d)))
        else:
            filled = {k: v.replace("{d}", str(d)) if isinstance(v, str) else v for k, v in (edits or {}).items()}
            write_yaml(d / "run.yaml", merge(run_config(d, method), filled))
        if setup is not None:
            setup(d)
    kw.setdefault("store", writes == "failed_run")
    return Case(id, kind, "train", ["--config", "{d}/run.yaml", *extra], fragments, prepare, writes=writes, **kw)


RUNTIME = "runtime:\n  output_dir: {d}/runs\n  tracking_uri: sqlite:///{d}/mlflow.db\n"

add(
    train("config-missing", "config", ("config file", "run.yaml", "does not exist"),
          setup=remove("run.yaml")),
    Case("config-missing-arg", "config", "train", [], ("--config is required", "--help-config")),
    Case("config-unknown-option", "config", "train", ["--config", "x.yaml", "--epochs", "3"],
         ("unrecognized arguments: --epochs 3",)),
    train("config-is-folder", "config", ("config file", "cfgdir", "is a folder"),
          setup=lambda d: (d / "cfgdir").mkdir(), extra=["--config", "{d}/cfgdir"]),
    train("config-empty", "config", ("config file", "run.yaml", "is empty"), text=""),
    train("config-nul-byte", "config", ("run.yaml", "is not valid YAML", "#x0000"), text="method: supervised\x00\n"),
    train("config-control-byte", "config", ("run.yaml", "is not valid YAML", "#x001b"),
          text="method: supervised\ntrain: {epochs: 1\x1b}\n"),
    train("config-random-bytes", "config", ("run.yaml", "not a UTF-8 text file"), subprocess=True,
          setup=write("run.yaml", RANDOM_BYTES)),
    train("config-utf16", "config", ("run.yaml", "not a UTF-8 text file"),
          setup=write("run.yaml", "method: supervised\n".encode("utf-16"))),
    train("config-syntax-bracket", "config", ("run.yaml", "is not valid YAML", "line 2"),
          text="method: supervised\ntrain: {epochs: [1, 2\n"),
    train("config-syntax-tab", "config", ("run.yaml", "is not valid YAML"), text="method: supervised\n\tseed: 1\n"),
    train("config-syntax-indent", "config", ("run.yaml", "is not valid YAML"),
          text="train:\n  epochs: 1\n batch_size: 2\n"),
    train("config-top-list", "config", ("run.yaml", "must contain a mapping", "list"), text="- method: supervised\n"),
    train("config-top-scalar", "config", ("run.yaml", "must contain a mapping", "str"), text="supervised\n"),
    train("config-python-tag", "config", ("run.yaml", "is not valid YAML", "python/object"),
          text="method: !!python/object/apply:os.system ['true']\n"),
    train("config-duplicate-top-key", "config", ("run.yaml", "key 'method' appears twice", "line 2"),
          text="method: supervised\nmethod: unimatch\n" + RUNTIME),
    train("config-duplicate-nested-key", "config", ("run.yaml", "key 'train.epochs' appears twice", "line 4"),
          text="train:\n  epochs: 1\n  batch_size: 2\n  epochs: 3\n" + RUNTIME),
    train("config-duplicate-section", "config", ("run.yaml", "key 'runtime' appears twice"),
          text=RUNTIME + RUNTIME),
    train("config-unknown-top-key", "config", ("unknown key 'methd'", "did you mean 'method'"), {"methd": "x"}),
    train("config-unknown-nested-key", "config", ("unknown key 'train.epcohs'", "did you mean 'train.epochs'"),
          {"train.epcohs": 3}),
    train("config-unknown-section", "config", ("unknown key 'trainer'", "valid keys here"), {"trainer": {"a": 1}}),
    train("config-int-key", "config", ("unknown key '5'",), text="5: x\n" + RUNTIME),
    train("config-section-scalar", "config", ("section 'train' must be a mapping", "5"), {"train": 5}),
    train("config-section-null", "config", ("section 'optim' must be a mapping", "None"), {"optim": None}),
    train("config-epochs-string", "config", ("key 'train.epochs'", "expected an integer", "'ten'"),
          {"train.epochs": "ten"}),
    train("config-epochs-float", "config", ("key 'train.epochs'", "expected an integer", "1.5"), {"train.epochs": 1.5}),
    train("config-epochs-zero", "config", ("key 'train.epochs'", "out of range", ">= 1"), {"train.epochs": 0}),
    train("config-bool-string", "config", ("key 'model.lock_backbone'", "expected true/false", "'yes'"),
          {"model.lock_backbone": "yes"}),
    train("config-lr-negative", "config", ("key 'optim.lr'", "out of range", "> 0.0"), {"optim.lr": -0.1}),
    train("config-lr-bool", "config", ("key 'optim.lr'", "expected a number", "True"), {"optim.lr": True}),
    train("config-lr-word", "config", ("key 'optim.lr'", "expected a number", "'fast'"), {"optim.lr": "fast"}),
    train("config-thresh-above-1", "config", ("key 'loss.conf_thresh'", "<= 1.0"), {"loss.conf_thresh": 1.5}),
    train("config-unknown-method", "config", ("key 'method'", "'unimatch_v9'", "valid: supervised"),
          {"method": "unimatch_v9"}),
    train("config-unknown-dataset", "config", ("key 'data.dataset'", "'pascall'", "valid:", "pascal"),
          {"data.dataset": "pascall"}),
    train("config-unknown-backbone", "config", ("key 'model.backbone'", "'resnet18'", "valid:", "resnet50"),
          {"model.backbone": "resnet18"}),
    train("config-optimizer-choice", "config", ("key 'optim.name'", "'adam'", "valid: sgd, adamw"),
          {"optim.name": "adam"}),
    train("config-scale-range-scalar", "config", ("key 'data.scale_range'", "expected a list of a number"),
          {"data.scale_range": 1.0}),
    train("config-scale-range-order", "config", ("key 'data.scale_range'", "0 < low <= high"),
          {"data.scale_range": [2.0, 1.0]}),
    train("config-list-item-type", "config", ("key 'model.aspp_dilations[1]'", "expected an integer", "'b'"),
          {"model.aspp_dilations": [1, "b", 3]}),
    train("config-split-unquoted", "config", ("key 'data.split'", "132", "quote it"), text="data:\n  split: 1_32\n"),
    train("config-seed-negative", "config", ("key 'seed'", ">= 0"), {"seed": -1}),
    train("config-output-stride", "config", ("key 'model.output_stride'", "valid: 8, 16"), {"model.output_stride": 32}),
    train("config-eval-mode", "config", ("key 'eval.mode'", "'sliding'", "sliding_window"), {"eval.mode": "sliding"}),
    train("config-amp-choice", "config", ("key 'train.amp'", "'fp32'", "valid: off, auto, bf16, fp16"),
          {"train.amp": "fp32"}),
    train("config-mask-encoding", "config", ("key 'data.mask_encoding'", "'reduce'", "reduce_zero"),
          {"data.mask_encoding": "reduce"}),
    train("config-crop-too-small", "config", ("key 'data.crop_size'", ">= 8"), {"data.crop_size": 4}),
    train("config-device-tpu", "config", ("key 'runtime.device'", "'tpu'", "valid: auto, cpu, cuda"),
          {"runtime.device": "tpu"}),
    train("config-workers-negative", "config", ("key 'runtime.num_workers'", ">= -1"), {"runtime.num_workers": -2}),
    train("config-threads-negative", "config", ("key 'runtime.threads'", ">= 0"), {"runtime.threads": -2}),
    train("config-checkpoint-every-string", "config", ("key 'runtime.checkpoint_every_iters'", "expected an integer"),
          {"runtime.checkpoint_every_iters": "often"}),
    train("config-prevmatch-mode", "config", ("key 'prevmatch.conf_mode'", "'pixel'", "pixelwise"),
          {"prevmatch.conf_mode": "pixel"}),
    train("config-ema-decay", "config", ("key 'ema.decay'", "<= 1.0"), {"ema.decay": 2}),
    train("config-report-model", "config", ("key 'eval.report_model'", "'teacher'", "valid: ema, student"),
          {"eval.report_model": "teacher"}),
    train("config-device-cuda-missing", "config", ("runtime.device is 'cuda'", "no CUDA device", "'auto' or 'cpu'"),
          {"runtime.device": "cuda"}, writes="failed_run"),
    train("config-dinov2-crop", "config", ("key 'data.crop_size'", "not a multiple of 14", "dinov2_small"),
          {"model.backbone": "dinov2_small", "method": "unimatch_v2"}),  # the catalog check: before any run
    # --set
    train("set-no-equals", "config", ("override 'train.epochs'", "must look like key=value"),
          extra=["--set", "train.epochs"]),
    train("set-unknown-key", "config", ("unknown key 'train.epochz'", "did you mean 'train.epochs'"),
          extra=["--set", "train.epochz=3"]),
    train("set-bad-yaml", "config", ("override 'train.epochs=[1,'", "not valid YAML"),
          extra=["--set", "train.epochs=[1,"]),
    train("set-through-value", "config", ("override 'train.epochs.x=1'", "'epochs' is not a section"),
          extra=["--set", "train.epochs.x=1"]),
    train("set-empty-key", "config", ("unknown key ''", "valid keys here"), extra=["--set", "=3"]),
    train("set-type", "config", ("key 'train.batch_size'", "expected an integer", "'two'"),
          extra=["--set", "train.batch_size=two"]),
    train("set-range", "config", ("key 'optim.lr'", "out of range"), extra=["--set", "optim.lr=0"]),
    train("set-method", "config", ("key 'method'", "'fixmach'", "valid:"), extra=["--set", "method=fixmach"]),
    train("set-section-scalar", "config", ("section 'data' must be a mapping",), extra=["--set", "data=3"]),
    # --tag
    train("tag-no-equals", "config", ("--tag 'semiseg.note'", "KEY=VALUE"), extra=["--tag", "semiseg.note"],
          store=True),
    train("tag-empty-key", "config", ("--tag '=x'", "KEY=VALUE"), extra=["--tag", "=x"], store=True),
    # runtime settings that only fail when used
    train("runtime-experiment-empty", "config", ("runtime.experiment", "empty"), {"runtime.experiment": ""},
          store=True),
    train("runtime-tracking-uri-bogus", "config", ("runtime.tracking_uri", "bogus://nowhere"),
          {"runtime.tracking_uri": "bogus://nowhere"}),
    train("runtime-output-dir-file", "config", ("runtime.output_dir", "is a file"),
          {"runtime.output_dir": "{d}/taken"}, setup=write("taken", "x")),
)

# --------------------------------------------------------------------------- train: data on disk


def broken(fn: Callable[[Path], None]) -> Callable[[Path], None]:
    """A setup step on the dataset root ``d/data``."""
    return lambda d: fn(d / "data")


def _img(stem: str) -> str:
    return f"images/{stem}.png"


def _mask(stem: str) -> str:
    return f"masks/{stem}.png"


def data(id: str, fragments: tuple[str, ...], fn: Callable[[Path], None], method: str = "supervised",
         edits: dict | None = None, **kw) -> Case:
    kw.setdefault("writes", "failed_run")
    return train(id, "data", fragments, edits, method=method, setup=broken(fn), **kw)


def _truncate_jpeg(root: Path) -> None:
    path = root / "images" / "train_000.jpg"
    write_image(path, fmt="JPEG")
    path.write_bytes(path.read_bytes()[:-200])
    write_lists(root, labeled=None)
    (root / "splits/s/labeled.txt").write_text(f"images/train_000.jpg {_mask('train_000')}\n{pair('train_001')}\n")


def _mask_values(value: int) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        values = np.zeros((SIZE, SIZE), np.uint8)
        values[3, 3] = value
        write_mask(root / _mask("train_001"), values)
    return run


def _mask_16bit(root: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((SIZE, SIZE), 300, np.uint16)).save(root / _mask("train_000"))


def _lines(rel: str, text: str) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        (root / rel).write_text(text)
    return run


def _classes_yaml(text: str) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        (root / "classes.txt").unlink()
        (root / "classes.yaml").write_text(text)
    return run


add(
    data("data-root-missing", ("dataset 'folder'", "does not exist", "set data.root"),
         lambda root: None, edits={"data.root": "/nonexistent/semiseg-data"}),
    data("data-root-is-file", ("dataset 'folder'", "does not exist"), lambda root: (root.parent / "f").write_text("x"),
         edits={"data.root": "{d}/f"}),
    data("data-no-classes", ("no classes.yaml or classes.txt", "one class name per line"),
         lambda root: (root / "classes.txt").unlink()),
    data("data-classes-empty", ("need 1..255 distinct class names",), _lines("classes.txt", "\n")),
    data("data-classes-duplicate", ("need 1..255 distinct class names", "'object', 'object'"),
         _lines("classes.txt", "object\nobject\n")),
    data("data-classes-yaml-invalid", ("classes.yaml", "is not valid YAML"), _classes_yaml("classes: [a, b\n")),
    data("data-classes-yaml-no-list", ("classes.yaml", "must be a mapping with a 'classes' list"),
         _classes_yaml("classes: a\n")),
    data("data-classes-yaml-unknown-key", ("classes.yaml", "unknown keys ['colours']", "valid: classes, palette"),
         _classes_yaml("classes: [a, b]\ncolours: []\n")),
    data("data-classes-yaml-palette", ("classes.yaml", "'palette' must hold one [r, g, b]", "(2)"),
         _classes_yaml("classes: [a, b]\npalette: [[0, 0, 0]]\n")),
    data("data-classes-yaml-mean", ("classes.yaml", "'mean' must be three numbers", "[0.5]"),
         _classes_yaml("classes: [a, b]\nmean: [0.5]\n")),
    data("data-classes-yaml-std-zero", ("classes.yaml", "'std' must be three numbers"),
         _classes_yaml("classes: [a, b]\nstd: [0, 1, 1]\n")),
    data("data-no-labeled-list", ("no labeled list for split 's'",),
         lambda root: (root / "splits/s/labeled.txt").unlink()),
    data("data-unknown-split", ("no labeled list for split 'nope'",), lambda root: None, edits={"data.split": "nope"}),
    data("data-no-val-list", ("no val list for split 's'",), lambda root: (root / "splits/val.txt").unlink()),
    data("data-labeled-empty", ("split 's' of 'folder' has an empty labeled list",),
         _lines("splits/s/labeled.txt", "\n")),
    data("data-list-three-columns", ("labeled.txt:2", "expected '<image> <mask>'"),
         _lines("splits/s/labeled.txt", f"{pair('train_000')}\n{pair('train_001')} extra\n")),
    data("data-list-one-column", ("labeled.txt:1", "expected '<image> <mask>'"),
         _lines("splits/s/labeled.txt", "images/train_000.png\n")),
    data("data-list-binary", ("cannot read split list", "labeled.txt"),
         lambda root: (root / "splits/s/labeled.txt").write_bytes(RANDOM_BYTES)),
    data("data-labeled-none-mask", ("has no mask", "only unlabeled lists may omit masks"),
         _lines("splits/s/labeled.txt", f"{_img('train_000')} None\n{pair('train_001')}\n")),
    data("data-batch-too-large", ("gives 2 samples per epoch", "fewer than one batch", "train.batch_size=4"),
         lambda root: None, edits={"train.batch_size": 4}),
    data("data-missing-image", ("image", "train_001.png", "does not exist"),
         lambda root: (root / _img("train_001")).unlink()),
    data("data-missing-mask", ("mask", "masks/train_000.png", "does not exist"),
         lambda root: (root / _mask("train_000")).unlink()),
    data("data-empty-image", ("image", "train_000.png", "is an empty file"),
         lambda root: (root / _img("train_000")).write_bytes(b"")),
    data("data-corrupt-image", ("image", "train_000.png", "is corrupt"),
         lambda root: (root / _img("train_000")).write_bytes(RANDOM_BYTES)),
    data("data-image-is-folder", ("cannot read image", "train_000.png"),
         lambda root: ((root / _img("train_000")).unlink(), (root / _img("train_000")).mkdir())),
    data("data-truncated-jpeg", ("image", "train_000.jpg", "truncated JPEG"), _truncate_jpeg),
    data("data-corrupt-mask", ("mask", "train_000.png", "is corrupt"),
         lambda root: (root / _mask("train_000")).write_bytes(b"\x89PNG\r\n\x1a\n" + RANDOM_BYTES)),
    data("data-empty-mask", ("mask", "train_000.png", "is an empty file"),
         lambda root: (root / _mask("train_000")).write_bytes(b"")),
    data("data-rgb-mask", ("mask", "train_000.png", "is a RGB image", "single-channel class-index PNG"),
         lambda root: write_image(root / _mask("train_000"))),
    data("data-mask-size-mismatch", ("mask", "train_001.png", "is 8x16", "is 16x16"),
         lambda root: write_mask(root / _mask("train_001"), size=(8, 16))),
    data("data-mask-class-out-of-range", ("mask", "train_001.png", "class id 7", "valid ids are 0..1 and 255"),
         _mask_values(7)),
    data("data-mask-16bit-range", ("mask", "train_000.png", "outside 0..255"), _mask_16bit),
    data("data-reduce-zero-on-reduced", ("holds 255", "reduce_zero", "set data.mask_encoding=index"),
         lambda root: None, edits={"data.mask_encoding": "reduce_zero"}),
    data("data-missing-unlabeled-image", ("image", "train_003.png", "does not exist"),
         lambda root: (root / _img("train_003")).unlink(), method="fixmatch"),
    data("data-corrupt-unlabeled-image", ("image", "train_002.png", "is corrupt"),
         lambda root: (root / _img("train_002")).write_bytes(RANDOM_BYTES), method="fixmatch"),
    data("data-missing-val-image", ("image", "val_000.png", "does not exist"),
         lambda root: (root / _img("val_000")).unlink()),
    data("data-val-mask-out-of-range", ("mask", "val_000.png", "class id 9"),
         lambda root: write_mask(root / _mask("val_000"), np.full((SIZE, SIZE), 9, np.uint8))),
    data("data-demo-root-foreign", ("is not a complete demo dataset", "delete that folder"),
         lambda root: None, edits={"data.dataset": "demo", "data.root": "{d}/data"}),
    # the default runtime.num_workers (1): errors are raised inside a DataLoader worker process
    data("data-missing-image-worker", ("image", "train_001.png", "does not exist"),
         lambda root: (root / _img("train_001")).unlink(), edits={"runtime.num_workers": DROP}, subprocess=True),
    data("data-corrupt-image-worker", ("image", "train_000.png", "is corrupt"),
         lambda root: (root / _img("train_000")).write_bytes(RANDOM_BYTES), edits={"runtime.num_workers": DROP},
         subprocess=True),
    # accepted with a warning: the official blended splits overlap
    data("data-labeled-duplicates", ("warning", "labeled list", "1 duplicate"),
         _lines("splits/s/labeled.txt", f"{pair('train_000')}\n{pair('train_000')}\n{pair('train_001')}\n"),
         rc=0, writes="any", store=True),
    data("data-labeled-unlabeled-overlap", ("warning", "1 of the 2 labeled images", "unlabeled list"),
         lambda root: write_lists(root, unlabeled=[TRAIN[1], TRAIN[2], TRAIN[3]]), method="fixmatch", rc=0,
         writes="any", store=True),
)

# --------------------------------------------------------------------------- train: encoder weights files


def weights(id: str, fragments: tuple[str, ...], fn: Callable[[Path], None] | None, pretrained: str = "{d}/w.pth",
            **kw) -> Case:
    kw.setdefault("writes", "failed_run")
    return train(id, "weights", fragments, {"model.pretrained": pretrained}, setup=fn, **kw)


def _torch_save(make: Callable[[], object]) -> Callable[[Path], None]:
    """Save ``make()`` to d/w.pth (torch is imported on first use)."""
    def run(d: Path) -> None:
        import torch

        torch.save(make(), d / "w.pth")
    return run


def _zeros(*shape: int):
    import torch

    return torch.zeros(*shape)


add(
    weights("weights-missing", ("model.pretrained", "w.pth", "does not exist", "demo_pretext"), None),
    weights("weights-folder", ("model.pretrained", "does not exist"), lambda d: (d / "w.pth").mkdir()),
    weights("weights-empty", ("model.pretrained", "cannot load", "w.pth"), write("w.pth", b"")),
    weights("weights-random-bytes", ("model.pretrained", "cannot load", "w.pth"), write("w.pth", RANDOM_BYTES)),
    weights("weights-text", ("model.pretrained", "cannot load"), write("w.pth", "not weights\n")),
    weights("weights-unknown-name", ("model.pretrained", "imagenet", "does not exist", "demo_pretext"), None,
            pretrained="imagenet"),
    weights("weights-list", ("model.pretrained", "does not hold a state dict"), _torch_save(lambda: [1, 2])),
    weights("weights-non-tensor", ("model.pretrained", "does not hold a state dict"), _torch_save(lambda: {"a": 1})),
    weights("weights-foreign-keys", ("model.pretrained", "does not match", "no parameter names in common"),
            _torch_save(lambda: {"fc.weight": _zeros(2, 2)})),
    weights("weights-shape-mismatch", ("model.pretrained", "does not match", "file (3,) vs model"),
            _torch_save(lambda: {"stem.0.weight": _zeros(3)})),
)

# --------------------------------------------------------------------------- experiment files (run_grid --dry-run)


def experiment(id: str, fragments: tuple[str, ...], edits: dict | None = None, *, text: str | None = None,
               extra: list[str] = (), **kw) -> Case:
    def prepare(d: Path) -> None:
        if text is not None:
            (d / "exp.yaml").write_text(text)
        else:
            write_yaml(d / "exp.yaml", merge(EXPERIMENT, edits or {}))
    return Case(id, "experiment", "run_grid", ["--exp", "{d}/exp.yaml", "--dry-run", *extra], fragments, prepare,
                **kw)


EXP_HEAD = "description: x\ndefaults: {data: {dataset: demo}, model: {backbone: tiny, output_stride: 8}}\n"

add(
    Case("exp-unknown-name", "experiment", "run_grid", ["--exp", "pasal_all", "--dry-run"],
         ("unknown experiment 'pasal_all'", "available:", "pascal_all")),
    Case("exp-missing-file", "experiment", "run_grid", ["--exp", "{d}/nope.yaml", "--dry-run"],
         ("unknown experiment", "nope.yaml", "available:")),
    experiment("exp-invalid-yaml", ("exp.yaml", "is not valid YAML"), text="grid: {method: [a, b\n"),
    Case("exp-random-bytes", "experiment", "run_grid", ["--exp", "{d}/exp.yaml", "--dry-run"],
         ("exp.yaml", "not a UTF-8 text file"), write("exp.yaml", RANDOM_BYTES)),
    experiment("exp-top-list", ("exp.yaml", "must contain a mapping"), text="- grid\n"),
    experiment("exp-empty", ("exp.yaml", "the experiment file is empty"), text=""),
    experiment("exp-nul-byte", ("exp.yaml", "is not valid YAML", "#x0000"), text=EXP_HEAD + "grid:\x00\n"),
    experiment("exp-duplicate-key", ("exp.yaml", "key 'grid' appears twice", "line 4"),
               text=EXP_HEAD + "grid: {method: [supervised]}\ngrid: {method: [fixmatch]}\n"),
    experiment("exp-duplicate-axis", ("exp.yaml", "key 'grid.method' appears twice"),
               text=EXP_HEAD + "grid:\n  method: [supervised]\n  method: [fixmatch]\n"),
    experiment("exp-unknown-top-key", ("exp.yaml", "unknown key(s) grids", "valid:", "grid"), {"grids": {}}),
    experiment("exp-grid-scalar", ("exp.yaml", "'grid' must map axes", "got 5"), {"grid": 5}),
    experiment("exp-grid-list", ("exp.yaml", "'grid' must map axes", "['supervised']"), {"grid": ["supervised"]}),
    experiment("exp-grid-unknown-axis", ("exp.yaml", "unknown grid axis 'methods'", "valid: method"),
               {"grid.methods": ["supervised"]}),
    experiment("exp-grid-empty-axis", ("exp.yaml", "grid axis 'method' is empty"), {"grid.method": []}),
    experiment("exp-grid-null-axis", ("exp.yaml", "grid axis 'split' is empty"), {"grid.split": None}),
    experiment("exp-grid-axis-mapping", ("exp.yaml", "grid axis 'seed'", "a list of values"),
               {"grid.seed": {"a": 1}}),
    experiment("exp-grid-unknown-method", ("method=supervisd", "key 'method'", "'supervisd'", "valid: supervised"),
               {"grid.method": ["supervisd"]}),
    experiment("exp-grid-seed-type", ("cell", "key 'seed'", "expected an integer", "'zero'"),
               {"grid.seed": ["zero"]}),
    experiment("exp-grid-seed-negative", ("key 'seed'", ">= 0"), {"grid.seed": [-1]}),
    experiment("exp-grid-split-int", ("key 'data.split'", "quote it"), {"grid.split": [116]}),
    experiment("exp-no-grid", ("has no grid", "runnable experiments"), {"grid": DROP}),
    experiment("exp-defaults-scalar", ("exp.yaml", "'defaults' must be a partial run config", "got 5"),
               {"defaults": 5}),
    experiment("exp-defaults-unknown-key", ("unknown key 'train.epoch'", "did you mean 'train.epochs'"),
               {"defaults.train.epoch": 3}),
    experiment("exp-defaults-bad-value", ("key 'optim.name'", "'adam'", "valid: sgd, adamw"),
               {"defaults.optim": {"name": "adam"}}),
    experiment("exp-overrides-scalar", ("exp.yaml", "'overrides' must be a list", "got 5"), {"overrides": 5}),
    experiment("exp-overrides-mapping", ("exp.yaml", "'overrides' must be a list"),
               {"overrides": {"when": {"method": "supervised"}, "set": {}}}),
    experiment("exp-override-no-set", ("exp.yaml", "each override needs 'set'"),
               {"overrides": [{"when": {"method": "supervised"}}]}),
    experiment("exp-override-set-scalar", ("exp.yaml", "each override needs 'set'"),
               {"overrides": [{"set": 3}]}),
    experiment("exp-override-unknown-field", ("exp.yaml", "each override needs 'set'", "'if'"),
               {"overrides": [{"if": {"method": "supervised"}, "set": {}}]}),
    experiment("exp-override-when-axis", ("exp.yaml", "a rule must map grid axes", "'methods'"),
               {"overrides": [{"when": {"methods": "supervised"}, "set": {"seed": 1}}]}),
    experiment("exp-override-bad-key", ("cell method=supervised", "unknown key 'train.epoch'"),
               {"overrides": [{"when": {"method": "supervised"}, "set": {"train": {"epoch": 2}}}]}),
    experiment("exp-exclude-scalar", ("exp.yaml", "'exclude' must be a list", "got 5"), {"exclude": 5}),
    experiment("exp-exclude-string", ("exp.yaml", "a rule must map grid axes", "'method'"), {"exclude": ["method"]}),
    experiment("exp-exclude-axis", ("exp.yaml", "a rule must map grid axes", "'backbones'"),
               {"exclude": [{"backbones": "tiny"}]}),
    experiment("exp-exclude-everything", ("exp.yaml", "excludes every cell"), {"exclude": [{"split": "1_16"}]}),
    experiment("exp-inherit-unknown", ("unknown experiment 'demoo'", "available:"), {"inherit": "demoo"}),
    experiment("exp-inherit-int", ("exp.yaml", "'inherit' must name an experiment", "got 5"), {"inherit": 5}),
    experiment("exp-inherit-list", ("exp.yaml", "'inherit' must name an experiment"), {"inherit": ["demo"]}),
    experiment("exp-inherit-abstract-axis", ("exp.yaml", "unknown grid axis 'sed'"),
               {"inherit": "demo", "grid": {"sed": [1]}}),
    experiment("exp-description-type", ("exp.yaml", "'description' must be a string", "got ['a']"),
               {"description": ["a"]}),
    experiment("exp-official-scalar", ("exp.yaml", "'official' must be {file: PATH, gpus: N}"), {"official": 5}),
    experiment("exp-official-missing-file", ("official", "nope.yaml"), {"official": {"file": "nope.yaml"}}),
    experiment("exp-official-gpus-word", ("exp.yaml", "'official'", "gpus", "'four'"),
               {"official": {"file": "x.yaml", "gpus": "four"}}),
    experiment("exp-search-scalar", ("exp.yaml", "'search' must map config keys"), {"search": 5}),
    experiment("exp-search-kind", ("exp.yaml", "unknown search kind 'range'", "valid: grid"),
               {"search": {"optim.lr": {"range": [1, 2]}}}),
    experiment("exp-search-bounds", ("exp.yaml", "'optim.lr' uniform needs two numbers LOW < HIGH"),
               {"search": {"optim.lr": {"uniform": [2, 1]}}}),
    experiment("exp-slurm-scalar", ("exp.yaml", "'slurm' must map resource keys"), {"slurm": 5}),
    experiment("exp-defaults-runtime", ("key 'runtime.device'", "'tpu'"), {"defaults.runtime": {"device": "tpu"}}),
)

# --------------------------------------------------------------------------- run_grid / status / tune options


def grid(id: str, fragments: tuple[str, ...], *argv: str, entry: str = "run_grid", dry: bool = True, **kw) -> Case:
    args = ["--exp", "demo", *(["--dry-run"] if dry and entry == "run_grid" else []), *argv]
    return Case(id, "launch", entry, args, fragments, **kw)



add(
    Case("grid-missing-exp", "launch", "run_grid", ["--dry-run"], ("the following arguments are required: --exp",)),
    grid("grid-dry-run-empty-folder", ("6 cells", "6 new"),
         rc=0),
    grid("grid-status-empty-folder", ("6 cells",), "--status", dry=False, rc=0),
    grid("grid-methods-unknown", ("--methods: unimatchh not valid for experiment 'demo'", "valid: unimatch"),
         "--methods", "unimatchh"),
    grid("grid-splits-unknown", ("--splits: 1_2 not valid for experiment 'demo'", "valid: 1_16, 1_4"),
         "--splits", "1_2"),
    grid("grid-seeds-zero", ("--seeds must be at least 1, got 0",), "--seeds", "0"),
    grid("grid-seeds-negative", ("--seeds must be at least 1, got -3",), "--seeds", "-3"),
    grid("grid-seeds-word", ("--seeds: invalid int value: 'two'",), "--seeds", "two"),
    grid("grid-seed-list-words", ("--seed-list must be comma-separated integers", "'a,b'"), "--seed-list", "a,b"),
    grid("grid-seed-list-negative", ("key 'seed'", ">= 0"), "--seed-list", "-1"),
    grid("grid-seeds-and-list", ("not allowed with argument --seeds",), "--seeds", "2", "--seed-list", "1"),
    grid("grid-max-parallel-zero", ("--max-parallel must be at least 1, got 0",), "--max-parallel", "0"),
    grid("grid-set-tracking-uri", ("--set runtime.tracking_uri=sqlite:///x.db", "use --tracking-uri"), "--set",
         "runtime.tracking_uri=sqlite:///x.db"),
    grid("grid-set-output-dir", ("--set runtime.output_dir=elsewhere", "use --output-dir"), "--set",
         "runtime.output_dir=elsewhere", dry=False),
    grid("grid-backend-unknown", ("--backend: invalid choice: 'k8s'",), "--backend", "k8s"),
    grid("grid-set-unknown", ("unknown key 'train.epochz'", "did you mean 'train.epochs'"), "--set", "train.epochz=3"),
    grid("grid-set-no-equals", ("override 'train.epochs'", "key=value"), "--set", "train.epochs"),
    grid("grid-set-range", ("key 'train.epochs'", ">= 1"), "--set", "train.epochs=0"),
    grid("grid-set-runtime", ("key 'runtime.device'", "'tpu'"), "--set", "runtime.device=tpu"),
    grid("grid-cluster-unknown", ("unknown cluster profile 'nocluster'", "available:", "local"),
         "--backend", "slurm", "--cluster", "nocluster", "--tracking-uri", "sqlite:///{d}/mlflow.db", store=True),
    grid("grid-cluster-set-key", ("--cluster-set: unknown cluster key 'gpuz'", "valid:"),
         "--backend", "slurm", "--cluster-set", "gpuz=1", "--tracking-uri", "sqlite:///{d}/mlflow.db", store=True),
    grid("grid-cluster-set-type", ("cluster key 'time_min' must be int", "'long'"),
         "--backend", "slurm", "--cluster-set", "time_min=long", "--tracking-uri", "sqlite:///{d}/mlflow.db",
         store=True),
    grid("grid-ray-cell-wider-than-the-cluster", ("train.gpus=2", "needs 128 CPUs on one node", "--gpus 1"),
         "--backend", "ray", "--methods", "supervised", "--splits", "1_16", "--set", "train.gpus=2",
         "--cpus-per-cell", "64", "--no-check", "--tracking-uri", "sqlite:///{d}/mlflow.db", "--output-dir", "{d}/runs",
         dry=False, store=True, writes="any"),  # the MLflow experiment is made before the backend starts
    grid("grid-tracking-uri-bogus", ("--tracking-uri", "bogus://x"), "--tracking-uri", "bogus://x"),
    grid("grid-output-dir-file", ("--output-dir", "is a file"), "--output-dir", "{d}/taken",
         "--tracking-uri", "sqlite:///{d}/mlflow.db", store=True, setup=write("taken", "x")),
    grid("status-empty-folder", ("6 cells",), entry="status", rc=0),
    Case("status-unknown-exp", "launch", "status", ["--exp", "dem"], ("unknown experiment 'dem'", "available:")),
    grid("status-methods-unknown", ("--methods: foo not valid",), "--methods", "foo", entry="status"),
    grid("status-seeds-zero", ("--seeds must be at least 1",), "--seeds", "0", entry="status"),
    grid("status-set-bad", ("unknown key 'optim.lrr'",), "--set", "optim.lrr=1", entry="status"),
    grid("status-unknown-option", ("unrecognized arguments: --dry-run",), "--dry-run", entry="status"),
)


def tune(id: str, fragments: tuple[str, ...], *argv: str, exp: str = "demo_thresholds", **kw) -> Case:
    return Case(id, "launch", "tune", ["--exp", exp, "--tracking-uri", "sqlite:///{d}/mlflow.db",
                                       "--output-dir", "{d}/runs", *argv], fragments, **kw)


add(
    tune("tune-unknown-exp", ("unknown experiment 'demo_thresh'",), exp="demo_thresh"),
    tune("tune-nothing-to-search", ("nothing to search", "--param KEY=SPEC"), exp="demo"),
    tune("tune-wider-than-the-cluster", ("train.gpus=2", "needs 128 CPUs on one node", "--gpus 1"), "--set",
         "train.gpus=2", "--cpus-per-cell", "64", store=True),
    tune("tune-param-no-equals", ("--param 'loss.conf_thresh'", "KEY=SPEC"), "--param", "loss.conf_thresh"),
    tune("tune-param-bad-spec", ("--param 'loss.conf_thresh=high'", "SPEC must be one of"),
         "--param", "loss.conf_thresh=high"),
    tune("tune-param-unknown-key", ("search key 'loss.conf_thres'", "unknown key 'loss.conf_thres'"),
         "--param", "loss.conf_thres=0.8:0.9"),
    tune("tune-param-out-of-range", ("search key 'loss.conf_thresh'", "<= 1.0"), "--param", "loss.conf_thresh=0.8:1.5"),
    tune("tune-param-log-zero", ("loguniform needs two numbers LOW < HIGH (LOW > 0)",), "--param", "optim.lr=log:0:1"),
    tune("tune-param-int-order", ("randint needs two numbers LOW < HIGH", "[8, 2]"),
         "--param", "train.batch_size=int:8:2"),
    tune("tune-param-choice-empty", ("needs a non-empty list of values for 'choice'",),
         "--param", "loss.criterion=choice:"),
    tune("tune-param-runtime", ("runtime settings are not searchable",), "--param", "runtime.threads=int:1:2"),
    tune("tune-num-samples-zero", ("--num-samples must be at least 1, got 0",), "--num-samples", "0"),
    tune("tune-grace-zero", ("--grace-period must be at least 1, got 0",), "--grace-period", "0"),
    tune("tune-max-failures-negative", ("--max-failures is deprecated", "--max-retries must be at least 0, got -1"),
         "--max-failures", "-1"),
    tune("tune-reduction-factor", ("--reduction-factor must be above 1, got 1.0",), "--reduction-factor", "1"),
    tune("tune-cpus-zero", ("--cpus-per-cell must be positive, got 0.0",), "--cpus-per-trial", "0"),
    tune("tune-gpus-fraction", ("--gpus-per-cell must be a fraction in [0, 1] or a whole number", "1.5"),
         "--gpus-per-trial", "1.5"),
    tune("tune-resume-no-study", ("--resume needs --study NAME",), "--resume"),
    tune("tune-resume-unknown-study", ("study 'thr9' does not exist", "check --study"), "--study", "thr9", "--resume"),
    tune("tune-scheduler-unknown", ("--scheduler: invalid choice: 'pbt'",), "--scheduler", "pbt"),
    tune("tune-methods-unknown", ("--methods: foo not valid for experiment",), "--methods", "foo"),
)

# --------------------------------------------------------------------------- reports/make_tables.py


def tables(id: str, fragments: tuple[str, ...], *argv: str, uri: str = "sqlite:///{d}/mlflow.db", **kw) -> Case:
    return Case(id, "reports", "make_tables", ["--exp", "demo", "--tracking-uri", uri, "--no-log", *argv],
                fragments, **kw)


def _foreign_sqlite(d: Path) -> None:
    import sqlite3

    with sqlite3.connect(d / "mlflow.db") as con:
        con.execute("CREATE TABLE t (x)")


FINISHED_RUN = {"name": "sup", "tags": {"semiseg.method": "supervised", "semiseg.dataset": "demo",
                                        "semiseg.split": "1_16", "semiseg.backbone": "tiny", "semiseg.seed": "0",
                                        "semiseg.hash": "a" * 64, "semiseg.n_labeled": "48"},
                "params": {"train.gpus": "1", "derived.device": "cpu"}, "metrics": {"best_miou": 40.0}}
STORE = (("demo", FINISHED_RUN),)

add(
    tables("tables-missing-store", ("tracking store", "does not exist", "mlflow.db")),
    tables("tables-corrupt-store", ("mlflow.db", "is not an MLflow store"), setup=write("mlflow.db", RANDOM_BYTES)),
    tables("tables-empty-store-file", ("mlflow.db", "is not an MLflow store"), setup=write("mlflow.db", b"")),
    tables("tables-foreign-sqlite", ("mlflow.db", "is not an MLflow store", "without MLflow's tables"),
           setup=_foreign_sqlite),
    tables("tables-store-is-folder", ("mlflow.db", "is a folder, not an MLflow store"),
           setup=lambda d: (d / "mlflow.db").mkdir()),
    tables("tables-unknown-exp", ("experiment 'demo' has no runs", "existing experiments:", "other"),
           runs=(("other", FINISHED_RUN),)),
    Case("tables-missing-arg", "reports", "make_tables", ["--no-log"],
         ("the following arguments are required: --exp",)),
    tables("tables-format", ("--format: invalid choice: 'html'",), "--format", "html"),
    tables("tables-metric", ("--metric: invalid choice: 'mean'",), "--metric", "mean"),
    tables("tables-metric-not-logged", ("logged metric 'best_miou_ema'", "summary metrics logged: best_miou"),
           "--metric", "ema", runs=STORE),
    tables("tables-out-is-file", ("--out", "taken", "is a file"), "--out", "{d}/taken", runs=STORE,
           setup=write("taken", "x")),
    tables("tables-out-under-file", ("--out", "taken", "is a file"), "--out", "{d}/taken/tables", runs=STORE,
           setup=write("taken", "x")),
    tables("tables-published-missing", ("--published", "nope.yaml", "does not exist"), "--published", "{d}/nope.yaml",
           runs=STORE),
    tables("tables-published-invalid", ("pub.yaml", "is not valid YAML"), "--published", "{d}/pub.yaml", runs=STORE,
           setup=write("pub.yaml", "entries: [\n")),
    tables("tables-published-duplicate", ("pub.yaml", "key 'entries' appears twice"), "--published", "{d}/pub.yaml",
           runs=STORE, setup=write("pub.yaml", "entries: []\nentries: []\n")),
    tables("tables-published-no-entries", ("pub.yaml", "a list under 'entries'"), "--published", "{d}/pub.yaml",
           runs=STORE, setup=write("pub.yaml", "entry: []\n")),
    tables("tables-tracking-uri-bogus", ("--tracking-uri", "bogus://x", "unsupported scheme"), uri="bogus://x"),
    tables("tables-only-running", ("experiment 'demo'", "no finished run"),
           runs=(("demo", {**FINISHED_RUN, "status": "RUNNING", "metrics": {}}),)),
)

# --------------------------------------------------------------------------- semiseg.splits


def splits(id: str, fragments: tuple[str, ...], *argv: str, setup=None, data_root: bool = True, **kw) -> Case:
    prepare = _chain(folder_data if data_root else None, setup)
    return Case(id, "splits", "splits", [a.replace("{root}", "{d}/data") for a in argv], fragments, prepare, **kw)


MAKE = ("make", "--dataset", "folder", "--root", "{root}", "--dest", "{d}/out", "--name", "new")
CHECK = ("check", "--dataset", "folder", "--root", "{root}")

add(
    splits("splits-no-command", ("the following arguments are required: command",)),
    splits("splits-unknown-dataset", ("--dataset: invalid choice: 'pasal'",), "check", "--dataset", "pasal"),
    splits("splits-import-missing-src", ("split source", "nope", "is not a folder"), "import", "{d}/nope",
           "--dataset", "pascal", "--dest", "{d}/out", data_root=False),
    splits("splits-import-no-lists", ("no *.txt split lists under",), "import", "{d}/src", "--dataset", "pascal",
           "--dest", "{d}/out", setup=lambda d: (d / "src").mkdir(), data_root=False),
    splits("splits-import-bad-line", ("labeled.txt:1", "expected '<image> <mask>'"), "import", "{d}/src",
           "--dataset", "pascal", "--dest", "{d}/out", setup=write("src/92/labeled.txt", "a b c\n"), data_root=False),
    splits("splits-import-none-mask", ("only unlabeled lists may give 'None'",), "import", "{d}/src", "--dataset",
           "pascal", "--dest", "{d}/out", setup=write("src/92/labeled.txt", "a.jpg None\n"), data_root=False),
    splits("splits-import-conflict", ("exists with different content", "--force"), "import", "{d}/src",
           "--dataset", "pascal", "--dest", "{d}/out",
           setup=_chain(write("src/92/labeled.txt", "a.jpg a.png\n"),
                        write("out/pascal/92/labeled.txt", "b.jpg b.png\n")),
           data_root=False),
    splits("splits-import-dest-file", ("--dest", "taken", "is a file"), "import", "{d}/src", "--dataset", "pascal",
           "--dest", "{d}/taken", setup=_chain(write("src/92/labeled.txt", "a.jpg a.png\n"), write("taken", "x")),
           data_root=False),
    splits("splits-check-root-missing", ("dataset 'folder'", "does not exist"), "check", "--dataset", "folder",
           "--root", "{d}/nope", data_root=False),
    splits("splits-check-unknown-split", ("split 'nope' of 'folder'", "no labeled.txt"), *CHECK, "--split", "nope"),
    splits("splits-check-empty-lists-dir", ("no split lists for 'folder'",), *CHECK, "--lists", "{d}/lists",
           setup=lambda d: (d / "lists").mkdir()),
    splits("splits-check-missing-file", ("1 listed files are missing", "train_001.png", "FAILED"), *CHECK,
           setup=lambda d: (d / "data" / _img("train_001")).unlink(), rc=1),
    splits("splits-check-full-corrupt", ("1 samples are unreadable", "train_000.png", "is corrupt", "FAILED"),
           *CHECK, "--full", setup=write("data/images/train_000.png", RANDOM_BYTES), rc=1),
    splits("splits-check-full-class-id", ("class id 7", "valid ids are 0..1 and 255", "FAILED"), *CHECK, "--full",
           setup=lambda d: _mask_values(7)(d / "data"), rc=1),
    splits("splits-check-workers-zero", ("--workers must be at least 1, got 0",), *CHECK, "--workers", "0"),
    splits("splits-check-show-negative", ("--show must be at least 0, got -1",), *CHECK, "--show", "-1"),
    splits("splits-check-duplicates", ("warning", "s/labeled.txt", "1 duplicate entries", "ok"), *CHECK, rc=0,
           setup=lambda d: write_lists(d / "data", labeled=[TRAIN[0], TRAIN[0], TRAIN[1]])),
    splits("splits-check-overlap", ("warning", "split 's'", "1 of the 2 labeled images", "unlabeled list", "ok"),
           *CHECK, rc=0, setup=lambda d: write_lists(d / "data", unlabeled=TRAIN[1:])),
    splits("splits-make-seed-negative", ("--seed must be at least 0, got -1",), *MAKE, "--labeled", "1",
           "--seed", "-1"),
    splits("splits-make-dest-file", ("--dest", "taken", "is a file"), *MAKE[:-4], "--dest", "{d}/taken", "--name",
           "new", "--labeled", "1", setup=write("taken", "x")),
    splits("splits-make-both-counts", ("give exactly one of --labeled N or --fraction 1/K",), *MAKE, "--labeled", "1",
           "--fraction", "1/2"),
    splits("splits-make-no-count", ("give exactly one of --labeled N or --fraction 1/K",), *MAKE),
    splits("splits-make-fraction-zero", ("--fraction '0' must lie in (0, 1]",), *MAKE, "--fraction", "0"),
    splits("splits-make-fraction-word", ("--fraction 'half' is not a fraction",), *MAKE, "--fraction", "half"),
    splits("splits-make-fraction-above-1", ("--fraction '3/2' must lie in (0, 1]",), *MAKE, "--fraction", "3/2"),
    splits("splits-make-fraction-div0", ("--fraction '1/0' is not a fraction",), *MAKE, "--fraction", "1/0"),
    splits("splits-make-labeled-zero", ("cannot draw 0 labeled images from a pool of 5",), *MAKE, "--labeled", "0"),
    splits("splits-make-labeled-too-many", ("cannot draw 9 labeled images from a pool of 5",), *MAKE, "--labeled", "9"),
    splits("splits-make-protocol-unknown", ("unknown protocol 'hq' for 'folder'", "none for this dataset"), *MAKE,
           "--labeled", "1", "--protocol", "hq"),
    splits("splits-make-pool-missing", ("cannot read split list", "nope.txt"), *MAKE, "--labeled", "1",
           "--pool", "{d}/nope.txt"),
    splits("splits-make-train-missing", ("cannot read split list", "nope.txt"), *MAKE, "--labeled", "1",
           "--train", "{d}/nope.txt"),
    splits("splits-make-pool-outside", ("1 images of the labeled pool are not in the train set", "images/x.png"),
           *MAKE, "--labeled", "1", "--pool", "{d}/pool.txt", setup=write("pool.txt", "images/x.png masks/x.png\n")),
    splits("splits-make-exists", ("labeled.txt exists", "--force"), *MAKE, "--labeled", "1",
           setup=write("out/folder/new/labeled.txt", "x y\n")),
    splits("splits-make-unlabeled-exists", ("unlabeled.txt exists", "--force", "nothing was written"), *MAKE,
           "--labeled", "1", setup=write("out/folder/new/unlabeled.txt", "x y\n")),
    splits("splits-make-name-path", ("--name '../up'", "a plain folder name"), *MAKE[:-1], "../up", "--labeled", "1"),
    splits("splits-make-name-empty", ("--name ''", "a plain folder name"), *MAKE[:-1], "", "--labeled", "1"),
    splits("splits-make-labeled-word", ("--labeled: invalid int value: 'two'",), *MAKE, "--labeled", "two"),
)

# --------------------------------------------------------------------------- semiseg.ood


def ood(id: str, fragments: tuple[str, ...], *argv: str, setup=None, **kw) -> Case:
    return Case(id, "ood", "ood", list(argv), fragments, setup, **kw)


def _ood_root(d: Path) -> None:
    root = d / "ood"
    for stem in ("o1", "o2"):
        write_image(root / "images" / f"{stem}.png")
        write_mask(root / "pl" / f"{stem}.png")
    (root / "ood.txt").write_text("images/o1.png pl/o1.png\nimages/o2.png pl/o2.png\n")


def _checkpoint(d: Path) -> None:
    """A weights file of a tiny demo model with its config (what ``ood predict`` reads)."""
    from semiseg.checkpoint import Weights, save_weights
    from semiseg.config import config_from_dict, config_to_dict
    from semiseg.models import build_model

    cfg = config_from_dict({"method": "supervised", "data": {"dataset": "demo", "crop_size": 16},
                            "model": {"backbone": "tiny", "output_stride": 8, "pretrained": ""}})
    save_weights(d / "ck.pth", Weights(build_model(cfg, 6).state_dict(), config_to_dict(cfg)))


OCHECK = ("check", "--root", "{d}/ood", "--dataset", "demo")
OPRED = ("predict", "--root", "{d}/ood", "--checkpoint", "{d}/ck.pth", "--device", "cpu")

add(
    ood("ood-no-command", ("the following arguments are required: command",)),
    ood("ood-check-root-missing", ("--root: folder", "nope", "does not exist"), "check", "--root", "{d}/nope",
        "--dataset", "demo"),
    ood("ood-check-root-file", ("--root: folder", "does not exist"), "check", "--root", "{d}/f", "--dataset", "demo",
        setup=write("f", "x")),
    ood("ood-check-list-missing", ("--list:", "ood.txt", "does not exist"), *OCHECK,
        setup=lambda d: (d / "ood").mkdir()),
    ood("ood-check-unknown-dataset", ("unknown dataset 'demoo'", "valid:"), "check", "--root", "{d}/ood", "--dataset",
        "demoo", setup=_ood_root),
    ood("ood-check-empty-list", ("ood.txt lists no images",), *OCHECK,
        setup=_chain(_ood_root, write("ood/ood.txt", ""))),
    ood("ood-check-bad-line", ("ood.txt:1", "expected '<image> <mask>'"), *OCHECK,
        setup=_chain(_ood_root, write("ood/ood.txt", "images/o1.png\n"))),
    ood("ood-check-missing-image", ("image", "o2.png", "does not exist"), *OCHECK,
        setup=_chain(_ood_root, remove("ood/images/o2.png"))),
    ood("ood-check-class-out-of-range", ("mask", "o1.png", "class id 6", "valid ids are 0..5"), *OCHECK,
        setup=_chain(_ood_root, lambda d: write_mask(d / "ood/pl/o1.png", np.full((SIZE, SIZE), 6, np.uint8)))),
    ood("ood-check-size-mismatch", ("mask", "o1.png", "is 8x8", "is 16x16"), *OCHECK,
        setup=_chain(_ood_root, lambda d: write_mask(d / "ood/pl/o1.png", size=(8, 8)))),
    ood("ood-check-folder-dataset", ("--dataset folder", "classes"), *OCHECK[:-1], "folder", setup=_ood_root),
    ood("ood-predict-checkpoint-missing", ("--checkpoint", "ck.pth", "does not exist"), *OPRED, setup=_ood_root),
    ood("ood-predict-checkpoint-garbage", ("checkpoint", "ck.pth", "cannot be read"), *OPRED,
        setup=_chain(_ood_root, write("ck.pth", RANDOM_BYTES))),
    ood("ood-predict-images-missing", ("--images:", "nope", "neither a folder nor a list file"), *OPRED, "--images",
        "nope", setup=_chain(_ood_root, write("ck.pth", RANDOM_BYTES))),
    ood("ood-predict-images-empty-folder", ("--images: folder", "holds no"), *OPRED, "--images", "empty",
        setup=_chain(_ood_root, write("ck.pth", RANDOM_BYTES), lambda d: (d / "ood/empty").mkdir())),
    ood("ood-predict-list-is-folder", ("--list", "images", "is a folder"), *OPRED, "--list", "images",
        setup=_chain(_ood_root, write("ck.pth", RANDOM_BYTES))),
    ood("ood-predict-masks-is-file", ("--masks", "ood.txt", "is a file"), *OPRED, "--masks", "ood.txt",
        setup=_chain(_ood_root, write("ck.pth", RANDOM_BYTES))),
    ood("ood-predict-device", ("--device: invalid choice: 'tpu'",), *OPRED[:-1], "tpu"),
    ood("ood-predict-corrupt-image", ("image", "o2.png", "is corrupt"), *OPRED,
        setup=_chain(_ood_root, _checkpoint, write("ood/images/o2.png", RANDOM_BYTES))),
)

# --------------------------------------------------------------------------- semiseg.pretext

add(  # the CLI takes no options: the recipe and the cache location are fixed (semiseg.pretext)
    Case("pretext-threads-removed", "pretext", "pretext", ["--threads", "2"], ("unrecognized arguments: --threads 2",)),
    Case("pretext-out-removed", "pretext", "pretext", ["--out", "{d}/w.pth"], ("unrecognized arguments: --out",)),
    Case("pretext-unknown-option", "pretext", "pretext", ["--epochs", "3"], ("unrecognized arguments: --epochs 3",)),
)

# a real process of its own for one case of every entry point: the script wrappers and import-time paths
for _id in ("exp-grid-scalar", "status-seeds-zero", "tune-num-samples-zero",
            "tables-missing-store", "splits-make-seed-negative", "ood-check-root-missing", "pretext-threads-removed"):
    next(c for c in CASES if c.id == _id).subprocess = True

KINDS = sorted({c.kind for c in CASES})
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


# --------------------------------------------------------------------------- data and weights downloads

OFFLINE = "http://127.0.0.1:9"  # nothing listens there: the no-network report
add(
    Case("prepare-unknown-dataset", "downloads", "prepare", ["pasal", "--root", "{d}/p"], ("invalid choice: 'pasal'",)),
    Case("prepare-no-network", "downloads", "prepare", ["pascal", "--root", "{d}/p", "--mirror", OFFLINE],
         ("cannot reach the download source(s)", "VOCtrainval_11-May-2012.tar", f"{OFFLINE}/sbd/benchmark.tgz",
          "download each URL on a machine with network access")),
    Case("prepare-mirror-not-url", "downloads", "prepare", ["pascal", "--root", "{d}/p", "--mirror", "mirror.local"],
         ("--mirror 'mirror.local'", "expected a base URL")),
    Case("prepare-bad-registry", "downloads", "prepare", ["ade20k", "--root", "{d}/p", "--checksums", "{d}/sums",
                                                     "--mirror", OFFLINE],
         ("sums:1", "expected '<md5 or sha256 hex>  <key>'", "'deadbeef x.zip'"), write("sums", "deadbeef x.zip\n")),
    Case("weights-fetch-unknown-name", "downloads", "weights", ["fetch", "resnet102"],
         ("invalid choice: 'resnet102'",)),
    Case("weights-fetch-from-missing", "downloads", "weights", ["fetch", "resnet101", "--from", "{d}/nope.pth"],
         ("--from", "nope.pth", "no such file")),
    Case("weights-fetch-no-network", "downloads", "weights", ["fetch", "dinov2_small", "--mirror", OFFLINE],
         ("cannot reach", "dinov2_vits14_pretrain.pth", f"{OFFLINE}/weights/dinov2_vits14_pretrain.pth")),
    Case("splits-fetch-root-and-dest", "splits", "splits", ["fetch", "pascal", "--root", "{d}/r", "--dest", "{d}/s"],
         ("give --root", "or --dest", "not both")),
    Case("splits-fetch-no-network", "splits", "splits", ["fetch", "coco", "--root", "{d}/r", "--mirror", OFFLINE],
         ("cannot reach", "labeled.txt", f"{OFFLINE}/github/LiheYoung/UniMatch/")),
)
