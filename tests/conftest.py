"""Shared fixtures: the demo dataset generated once per session, and small run configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from semiseg.config import RunConfig, apply_overrides, config_from_dict


#: Data kept beside the clone, not in it (the official split lists, the spec): CI has it, a user's clone may not.
SHARED = Path(__file__).resolve().parents[2] / "shared"


def require_shared(path: Path) -> Path:
    """``path`` under ../shared; a test without it skips with the reason, and fails under ``CI=true``."""
    import os

    if path.exists():
        return path
    reason = f"{path} is not there (../shared beside the clone holds the official split lists and the spec)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI runs with ../shared beside the clone: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Named weights made by tests go to a session folder, never to the user's ~/.cache/semiseg."""
    import os

    os.environ["SEMISEG_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    from semiseg.data.demo import ensure_demo

    return ensure_demo(tmp_path_factory.mktemp("data") / "demo")


def small_config(tmp: Path, demo: Path, *overrides: str) -> RunConfig:
    """A seconds-long CPU run on the demo data, tracked in ``tmp/mlflow.db``."""
    base = {
        "method": "unimatch", "seed": 0,
        "data": {"dataset": "demo", "root": str(demo), "split": "1_32", "crop_size": 32},
        "model": {"backbone": "tiny", "output_stride": 8, "aspp_dilations": [1, 2, 3]},
        "optim": {"name": "sgd", "lr": 0.01, "lr_multi": 1.0},
        "train": {"epochs": 2, "batch_size": 4, "max_iters_per_epoch": 2},
        "runtime": {"num_workers": 0, "threads": 1, "output_dir": str(tmp / "runs"),
                    "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}", "experiment": "tests"},
    }
    return config_from_dict(apply_overrides(base, list(overrides)))


@pytest.fixture
def make_config(tmp_path, demo_root):
    """``make_config(*overrides, folder="")``: a small config tracked under ``tmp_path/folder``."""
    return lambda *overrides, folder="": small_config(tmp_path / folder, demo_root, *overrides)
