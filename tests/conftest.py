"""Shared fixtures: the demo dataset generated once per session, and small run configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from semiseg.config import RunConfig, apply_overrides, config_from_dict


#: Reference data kept beside the clone, never in it (the official split lists under ``splits/``, the collected
#: official results under ``spec/``): ``$SEMISEG_SHARED``, else the folder ``shared`` next to the clone.
SHARED = Path(os.environ.get("SEMISEG_SHARED") or Path(__file__).resolve().parents[2] / "shared")

#: Set to 1 (``.ci/run`` does) to make a test that needs the reference data fail instead of skipping.
REQUIRE_SHARED = "SEMISEG_REQUIRE_SHARED"


def require_shared(path: Path) -> Path:
    """``path`` (under :data:`SHARED`) if it exists; else skip with the reason, or fail if SEMISEG_REQUIRE_SHARED=1."""
    if path.exists():
        return path
    reason = (f"{path} is not there: the official split lists and results are reference data kept outside the "
              f"repository (set SEMISEG_SHARED to the folder holding them)")
    if os.environ.get(REQUIRE_SHARED) == "1":
        pytest.fail(f"{REQUIRE_SHARED}=1 demands the reference data: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Named weights made by tests go to a session folder, never to the user's ~/.cache/semiseg."""
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
