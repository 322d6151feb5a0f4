"""The official reference runs seen from a grid: static cost estimates and the gap of each run to its cell's curve.

Kept apart from :mod:`semiseg.launch.plan` (which owns cell state): the plan and the status call these functions.
"""

from __future__ import annotations

from semiseg.reference_match import References, gap
from semiseg.hooks import ALERT_TAG
from semiseg.tracking import metric_history, run_tags

#: ``PlannedCell.est_source`` of an estimate made from the official logs (not from this store's finished runs).
FROM_OFFICIAL = "official logs"


def add_official_estimates(planned: list, uri: str, speed: float = 1.0) -> int:
    """Give every cell without an estimate one from its matching reference runs (their GPU-hours per epoch x the
    cell's epochs / ``speed``); returns how many cells got one."""
    missing = [p for p in planned if p.est_hours is None]
    refs = References(uri) if missing else None
    count = 0
    for p in missing if refs else []:
        hours = refs.gpu_hours(p.cell.config, speed)
        if hours is not None:
            p.est_hours, p.est_source = hours, FROM_OFFICIAL
            count += 1
    return count


def official_gaps(planned: list, uri: str) -> dict[str, dict]:
    """Per cell hash with a run and an official curve: the epoch both have last, the run's and the official val mIoU
    there, their difference (negative = behind), the official best (mean over the matching logs) and the run's alert
    tag (:data:`semiseg.hooks.ALERT_TAG`, "" when none)."""
    refs = References(uri)
    out: dict[str, dict] = {}
    if not refs:
        return out
    for p in planned:
        official = refs.curve(p.cell.config)
        if not official or not p.run_id:
            continue
        curve = dict(metric_history(uri, p.run_id, "val/miou"))
        found = gap(curve, official)
        if found:
            epoch, diff = found
            best = refs.best_of(refs.for_config(p.cell.config))
            out[p.cell.hash] = {"epoch": epoch + 1, "miou": curve[epoch], "official": official[epoch], "gap": diff,
                                "official_best": best[0] if best else None,
                                "alert": run_tags(uri, p.run_id).get(ALERT_TAG, "")}
    return out
