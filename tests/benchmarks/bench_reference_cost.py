"""How well the static cost estimate from an official log reproduces that log's measured cost.

For every log under the given folders that the importer reads with a GPU count: estimated GPU-hours =
GPUs x (iterations/epoch x median s/iteration + median evaluation time) x evaluated epochs, measured =
GPUs x the sum of its epochs' wall times (timestamps). Prints the ratio's median and deciles per format.

    python tests/benchmarks/bench_reference_cost.py ~/src/UniMatch/training-logs ~/src/UniMatch-V2/training-logs \
        ~/src/PrevMatch/training_logs
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from semiseg.official_logs import LogError, parse_log  # noqa: E402
from semiseg.reference import stream_size  # noqa: E402


def main(folders: list[str]) -> None:
    ratios: dict[str, list[float]] = {}
    for path in sorted(p for folder in folders for p in Path(folder).rglob("*.log")):
        try:
            log = parse_log(path.read_text(encoding="utf-8", errors="replace"), str(path), stream_size)
        except LogError:
            continue
        if log.gpu_hours_per_epoch and log.epoch_seconds:
            measured = log.gpus * sum(log.epoch_seconds.values()) / 3600
            ratios.setdefault(log.format, []).append(log.gpu_hours_per_epoch * len(log.epoch_seconds) / measured)
    everything = [r for values in ratios.values() for r in values]
    for name, values in [*sorted(ratios.items()), ("all", everything)]:
        deciles = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
        print(f"{name:18} {len(values):4} logs  median {statistics.median(values):.3f}  "
              f"p10 {deciles[0]:.3f}  p90 {deciles[8]:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
