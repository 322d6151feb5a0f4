"""Write synthetic training logs in the official repositories' formats (for the reference-import tests)."""

from __future__ import annotations

import pprint
from datetime import datetime, timedelta
from pathlib import Path

CLASSES = ("background", "disk", "rectangle")


def _stamp(t: datetime) -> str:
    return f"[{t:%Y-%m-%d %H:%M:%S},{t.microsecond // 1000:03d}][    INFO] "


def write_log(path: Path, fmt: str, config: dict, curve: list[float], iters_per_epoch: int = 80,
              s_per_iter: float = 0.5, eval_s: float = 20.0, ema: list[float] | None = None,
              classes=CLASSES, stop_line: str | None = None, partial_epoch: bool = False,
              preamble: str = "") -> Path:
    """A log of ``len(curve)`` evaluated epochs in format ``fmt`` (unimatch-v1-2022, unimatch-v1-2023,
    unimatch-v2, prevmatch); ``partial_epoch`` adds an epoch that starts but is never evaluated, ``stop_line``
    an unstamped line after the last one (``Killed``)."""
    t = datetime(2024, 3, 1, 9, 0, 0, 125000)
    out = [preamble] if preamble else []
    out.append(_stamp(t) + pprint.pformat(config))
    out.append("")
    t += timedelta(seconds=1.5)
    out.append(_stamp(t) + "Total params: 1.0M")
    every = iters_per_epoch // 8
    best = best_ema = 0.0
    epochs = len(curve) + (1 if partial_epoch else 0)
    for epoch in range(epochs):
        t += timedelta(seconds=1)
        if fmt == "unimatch-v2" and ema is not None:
            out.append(_stamp(t) + f"===========> Epoch: {epoch}, Previous best: {best:.2f} @epoch-0, EMA: "
                       f"{best_ema:.2f} @epoch-0")
        elif fmt == "prevmatch":
            out.append(_stamp(t) + f"===========> Epoch: {epoch}, LR: 0.00100, Previous best: {best:.2f}, ETA: 0.00M")
        else:
            out.append(_stamp(t) + f"===========> Epoch: {epoch}, LR: 0.0010, Previous best: {best:.2f}")
        start = t
        for i in range(0, iters_per_epoch, every):
            t = start + timedelta(seconds=(i + 1) * s_per_iter)
            loss = "Total loss: 0.300, Loss x: 0.200, Loss s: 0.100, Loss w_fp: 0.010, Mask ratio: 0.700"
            if fmt == "prevmatch":
                loss = f"iter time: {s_per_iter:.3f}, " + loss
            if fmt == "unimatch-v2":
                loss = "LR: 0.0000050, Total loss: 0.300, Loss x: 0.200, Loss s: 0.100, Mask ratio: 0.700"
            out.append(_stamp(t) + f"Iters: {i}, {loss}")
        if partial_epoch and epoch == epochs - 1:
            out.append(_stamp(t)[:30])  # a line cut in the middle, as a log copied while running
            break
        t = start + timedelta(seconds=iters_per_epoch * s_per_iter + eval_s)
        miou = curve[epoch]
        for k, name in enumerate(classes):
            value = f"IoU: {miou + k:.2f}" + (f", EMA: {ema[epoch] + k:.2f}" if ema else "")
            out.append(_stamp(t) + f"***** Evaluation ***** >>>> Class [{k} {name}] IoU: {value[5:]}")
        mean = "MeanIoU" if fmt != "unimatch-v1-2022" else "meanIOU"
        out.append(_stamp(t) + f"***** Evaluation original ***** >>>> {mean}: {miou:.2f}"
                   + (f", EMA: {ema[epoch]:.2f}" if ema else ""))
        out.append("")
        best = max(best, miou)
        best_ema = max(best_ema, ema[epoch]) if ema else 0.0
    if stop_line:
        out.append(stop_line)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path


def config_of(fmt: str, dataset: str = "pascal", split: str = "92", backbone: str = "resnet101",
              method_folder: str = "unimatch", epochs: int = 80, crop: int = 321, batch: int = 2, ngpus: int = 4,
              lr: float = 0.001, conf: float = 0.95) -> dict:
    """The printed config of a log in ``fmt``."""
    config = {"backbone": backbone, "batch_size": batch, "conf_thresh": conf,
              "criterion": {"kwargs": {"ignore_index": 255}, "name": "CELoss"}, "crop_size": crop,
              "data_root": "../data", "dataset": dataset, "dilations": [6, 12, 18], "epochs": epochs, "lr": lr,
              "lr_multi": 10.0, "nclass": 21, "replace_stride_with_dilation": [False, False, True]}
    if fmt == "unimatch-v1-2022":
        config["multi_grid"] = False
        return config
    config.update({"config": f"configs/{dataset}.yaml", "labeled_id_path": f"splits/{dataset}/{split}/labeled.txt",
                   "unlabeled_id_path": f"splits/{dataset}/{split}/unlabeled.txt", "local_rank": 0, "ngpus": ngpus,
                   "port": 123, "save_path": f"exp/{dataset}/{method_folder}/{backbone}/{split}"})
    if fmt == "unimatch-v2":
        config.update({"model": "dpt", "lock_backbone": False})
        for key in ("dilations", "replace_stride_with_dilation"):
            config.pop(key)
    if fmt == "prevmatch":
        config.update({"amp": True, "model": "deeplabv3plus", "prev": {"base_only_epoch": 0, "conf_thresh": 0.9,
                       "list_max_len": 8, "model_num": 3, "random_select": True}})
    return config
