"""Import the official repositories' training logs as reference runs (MLflow experiment ``semiseg-reference``).

Sources understood (the format is read from each log's content):
  unimatch-v1-2022  UniMatch's 2022 Pascal logs (no ngpus printed: the GPU count is inferred from iterations
                    per epoch and the split size, and recorded as inferred)
  unimatch-v1-2023  UniMatch's Pascal / Cityscapes / COCO logs (training-logs/)
  unimatch-v2       UniMatch V2's logs (training-logs/; student and EMA mIoU)
  prevmatch         PrevMatch's logs (training_logs/)

Each log becomes one FINISHED run tagged semiseg.reference=official with the cell identity tags (method,
dataset, split, backbone), the recipe under this project's config keys, the per-epoch val mIoU (student and
EMA where logged), the per-class IoU of the best epoch, iterations per epoch, wall time per epoch and the GPU
count. A log that cannot be read is reported with the reason and skipped; importing a log twice does nothing.
Exit status: 0 every log imported (or already there), 1 some skipped, 2 none imported or a bad call.

examples:
  semiseg reference import ~/src/UniMatch/training-logs ~/src/PrevMatch/training_logs
  semiseg reference import --fetch unimatch,unimatch-v2,prevmatch
  SEMISEG_MIRROR=http://mirror.example/raw semiseg reference import --fetch prevmatch
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from semiseg.cli import prog, run_cli
from semiseg.data.catalog import OFFICIAL_COUNTS
from semiseg.errors import UserError
from semiseg.official_logs import FORMATS, LogError, OfficialLog, parse_log
from semiseg.reference_match import GPU_H_PER_EPOCH
from semiseg.tracking import REFERENCE_EXPERIMENT, REFERENCE_TAG, TAG_PREFIX, log_reference_run
from semiseg.workspace import TRACKING_VARIABLE, default_tracking_uri

#: Base URL of the raw files; ``$SEMISEG_MIRROR`` replaces it (``<base>/<owner>/<repo>/<commit>/<path>``).
RAW_BASE = "https://raw.githubusercontent.com"
_PASCAL_HQ = ("92", "183", "366", "732", "1464")
_BLENDED = ("1_16", "1_8", "1_4")
_CITY = ("1_16", "1_8", "1_4", "1_2")
_COCO = ("1_32", "1_64", "1_128", "1_256", "1_512")
_ADE = ("1_64", "1_32", "1_16", "1_8", "1_4")
#: --fetch sources: (repository, pinned commit, log paths) — the main-table logs of each repository.
SOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "unimatch": ("LiheYoung/UniMatch", "0324f3dd4a22128105a5eb135d2586c0bb3cc647", (
        *(f"training-logs/Pascal-VOC-2012/High-Quality-Split-Size321/ResNet-101/{s}-run{r}.log"
          for s in _PASCAL_HQ for r in (1, 2, 3)),
        *(f"training-logs/Pascal-VOC-2012/Blended-Split-Size321/ResNet-101/{s}-run{r}.log"
          for s in _BLENDED for r in (1, 2, 3)),
        *(f"training-logs/Pascal-VOC-2012/High-Quality-Split-Size321/ResNet-50/{s}.log" for s in _PASCAL_HQ),
        *(f"training-logs/Pascal-VOC-2012/U2PL-Split-Size513/{b}/{s}.log" for b in ("ResNet-101", "ResNet-50")
          for s in _BLENDED),
        *(f"training-logs/Cityscapes/{b}/{s}.log" for b in ("ResNet-101", "ResNet-50") for s in _CITY),
        *(f"training-logs/COCO/{s}.log" for s in _COCO))),
    "unimatch-v2": ("LiheYoung/UniMatch-V2", "f6afb4dfca2d9dcbcee2307e97717954ca75c0ba", (
        *(f"training-logs/table01-pascal_{m}_{s}labels_dinov2_{b}.log" for m in ("unimatch_v2", "labeled_only")
          for s in _PASCAL_HQ for b in ("small", "base")),
        *(f"training-logs/table02-cityscapes_{m}_{s}labels_dinov2_{b}.log" for m in ("unimatch_v2", "labeled_only")
          for s in _CITY for b in ("small", "base")),
        *(f"training-logs/table03-ade20k_{m}_{s}labels_dinov2_{b}.log" for m in ("unimatch_v2", "labeled_only")
          for s in _ADE for b in ("small", "base")),
        *(f"training-logs/table04-coco_{m}_{s}labels_dinov2_{b}.log" for m in ("unimatch_v2", "labeled_only")
          for s in _COCO for b in ("small", "base")))),
    "prevmatch": ("wooseok-shin/PrevMatch", "bcfac70024616f28cdc7b97d4d2ce796df40c1be", tuple(
        f"training_logs/{name}.log" for name in (  # the names carry each log's best mIoU
            *(f"cityscapes/ResNet-101/{n}" for n in ("1_16-77.7", "1_2-80.1", "1_4-80.1", "1_8-78.9")),
            *(f"cityscapes/ResNet-50/{n}" for n in ("1_16-76.0", "1_2-79.2", "1_4-78.7", "1_8-77.8")),
            *(f"pascal/Blended-Protocol_R-50/321size/{n}" for n in ("1_16-75.6", "1_4-76.3", "1_8-76.4")),
            *(f"pascal/Blended-Protocol_R-50/513size/{n}" for n in ("1_16-76.0", "1_4-77.6", "1_8-77.1")),
            *(f"pascal/Original-Protocol/ResNet-101/{n}" for n in ("1464-81.6", "183-79.0", "366-79.6", "732-80.4",
                                                                    "92-77.1")),
            *(f"pascal/Original-Protocol/ResNet-50/{n}" for n in (
                "1464-run1-79.4", "1464-run2-79.4", "1464-run3-79.7", "183-run1-75.9", "183-run2-75.1",
                "183-run3-75.1", "366-run1-78.0", "366-run2-77.3", "366-run3-77.3", "732-run1-78.7",
                "732-run2-78.8", "732-run3-78.4", "92-run1-73.5", "92-run2-73.7", "92-run3-73.0")),
            *(f"pascal/Priority-Protocol_R-101/{n}" for n in ("1_16-81.4", "1_4-80.8", "1_8-81.9"))))),
}


def stream_size(dataset: str, split: str, method: str) -> int | None:
    """Images an epoch iterates: the official unlabeled list of semi-supervised methods; None for supervised
    (its labeled list is upsampled to a recipe-specific length) and splits without an official count."""
    if method == "supervised":
        return None
    return OFFICIAL_COUNTS.get(dataset, {}).get(f"{split}/unlabeled.txt")


def fetch_logs(source: str, dest: Path) -> list[Path]:
    """Download the logs of ``source`` at its pinned commit into ``dest`` with plain HTTP GETs (base URL
    :data:`RAW_BASE`, or ``$SEMISEG_MIRROR``). The one place logs are downloaded."""
    repo, commit, paths = SOURCES[source]
    base = os.environ.get("SEMISEG_MIRROR", RAW_BASE).rstrip("/")
    out = []
    for path in paths:
        url = f"{base}/{repo}/{commit}/{path}"
        target = dest / repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                target.write_bytes(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise UserError(f"cannot download {url}: {exc} (set SEMISEG_MIRROR to a mirror of {RAW_BASE})") from None
        out.append(target)
    return out


def record(log: OfficialLog, text: str, uri: str, origin: str) -> str | None:
    """Write ``log`` as a reference run; None when it was imported before."""
    best = log.best()
    tags = {REFERENCE_TAG: "official", f"{REFERENCE_TAG}.format": log.format, f"{REFERENCE_TAG}.source": origin,
            f"{REFERENCE_TAG}.ending": log.ending, f"{REFERENCE_TAG}.digest": hashlib.sha256(text.encode()).hexdigest(),
            f"{REFERENCE_TAG}.gpus_inferred": str(log.gpus_inferred).lower(),
            f"{REFERENCE_TAG}.notes": "; ".join(log.notes), f"{REFERENCE_TAG}.problems": "; ".join(log.problems),
            TAG_PREFIX + "method": log.method, TAG_PREFIX + "dataset": log.dataset, TAG_PREFIX + "split": log.split,
            TAG_PREFIX + "backbone": log.backbone, TAG_PREFIX + "exp": REFERENCE_EXPERIMENT,
            TAG_PREFIX + "reported_model": "ema" if log.has_ema else "student",
            "mlflow.runName": f"official · {log.method} · {log.dataset} · {log.split} · {log.backbone}"
                              + (f" · run{log.run}" if log.run else "")}
    params = {**log.recipe, "reference.gpus": log.gpus,
              "reference.log_interval": log.log_interval, "derived.iters_per_epoch": log.iters_per_epoch,
              "reference.seconds_per_iter": log.seconds_per_iter, "reference.eval_seconds": log.eval_seconds,
              GPU_H_PER_EPOCH: log.gpu_hours_per_epoch}
    params = {k: v for k, v in params.items() if v is not None}
    curves = {"val/miou": log.curve("reported"), "reference/epoch_seconds": sorted(log.epoch_seconds.items())}
    if log.has_ema:
        curves.update({"val/miou_student": log.curve("student"), "val/miou_ema": log.curve("ema")})
    final = {"best_miou": (best.epoch, best.miou_ema if log.has_ema else best.miou),
             "best_epoch": (best.epoch, best.epoch), "last_miou": log.curve("reported")[-1]}
    per_class = best.per_class_ema if log.has_ema and best.per_class_ema else best.per_class
    final.update({f"val/iou/{name}": (best.epoch, value) for name, value in per_class.items()})
    return log_reference_run(uri, tags["mlflow.runName"], tags, params, curves, final,
                             int(log.started.timestamp() * 1000), int(log.ended.timestamp() * 1000))


def import_paths(paths: list[Path], uri: str, method: str | None = None) -> tuple[int, int, list[str]]:
    """(imported, already present, problems) for every ``*.log`` under ``paths``."""
    files = [f for p in paths for f in (sorted(p.rglob("*.log")) if p.is_dir() else [p])]
    if not files:
        raise UserError(f"no .log files under {', '.join(map(str, paths))}")
    imported = present = 0
    problems = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
            log = parse_log(text, str(path), stream_size, method)
        except (OSError, LogError) as exc:
            problems.append(str(exc))
            continue
        run_id = record(log, text, uri, str(path))
        imported += run_id is not None
        present += run_id is None
        best = log.best()
        print(f"{'imported' if run_id else 'already there'}: {path.name}: {log.format} {log.method} {log.dataset}/"
              f"{log.split} {log.backbone}, {len(log.evaluations)}/{log.epochs} evaluations ({log.ending}), best "
              f"{best.miou_ema if log.has_ema else best.miou:.2f}, {log.gpus or '?'} GPU(s)"
              + (" (inferred)" if log.gpus_inferred else "")
              + "".join(f"\n  not read: {p}" for p in log.problems))
    return imported, present, problems


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog("reference", "semiseg.reference"), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help=f"import official logs (formats: {', '.join(FORMATS)})",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("paths", nargs="*", type=Path, help="log files or folders searched for *.log, e.g. "
                                                         "UniMatch/training-logs")
    imp.add_argument("--fetch", default="", help=f"download the pinned logs of these sources first "
                     f"({', '.join(SOURCES)}; comma-separated), e.g. --fetch unimatch-v2")
    imp.add_argument("--method", default=None, help="the project method of every log given (overrides what the "
                     "log says), e.g. --method unimatch")
    imp.add_argument("--tracking-uri", default=None, help=f"MLflow store (default ${TRACKING_VARIABLE}, else "
                     f"{default_tracking_uri()}), e.g. sqlite:///mlflow.db")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.tracking_uri = args.tracking_uri or default_tracking_uri()
    sources = [s for s in args.fetch.split(",") if s]
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise UserError(f"--fetch {','.join(unknown)}: unknown source; known: {', '.join(SOURCES)}")
    if not args.paths and not sources:
        raise UserError("nothing to import: give log files / folders, or --fetch SOURCE")
    with tempfile.TemporaryDirectory() as tmp:
        paths = list(args.paths) + [f for s in sources for f in fetch_logs(s, Path(tmp))]
        imported, present, problems = import_paths(paths, args.tracking_uri, args.method)
    for problem in problems:
        print(f"skipped: {problem}", file=sys.stderr)
    print(f"{imported} imported, {present} already there, {len(problems)} skipped, into experiment "
          f"{REFERENCE_EXPERIMENT!r} of {args.tracking_uri}")
    if not imported and not present:
        return 2
    return 1 if problems else 0


def cli() -> int:
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
