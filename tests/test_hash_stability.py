"""Hash stability: the identity hash of every cell of the shipped experiments and the schema defaults are
pinned (tests/golden/identity.json).

A cell's hash is its config without ``runtime`` and without the values at their schema default
(:func:`semiseg.config.identity_dict`): changing a default, or an experiment file, silently moves existing
FINISHED runs to another identity (they would be trained again, and tables would split or merge recipes).
This test makes that a visible, deliberate act: if the change is meant, regenerate the file with
``python tests/test_hash_stability.py`` and say so in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from semiseg.config import RunConfig, config_to_dict
from semiseg.experiments.registry import expand, list_experiments, load_experiment

GOLDEN = Path(__file__).with_name("golden") / "identity.json"


def current() -> dict:
    cells = {name: {"/".join(f"{k}={v}" for k, v in cell.axes.items()): cell.hash
                    for cell in expand(load_experiment(name))} for name in list_experiments()}
    defaults = {section: values for section, values in config_to_dict(RunConfig()).items() if section != "runtime"}
    return {"schema_defaults": defaults, "cells": cells}  # runtime is not part of a cell's identity


def test_identity_hashes_and_schema_defaults_are_pinned():
    pinned, now = json.loads(GOLDEN.read_text()), current()
    changed = {k for k in pinned["schema_defaults"].keys() | now["schema_defaults"].keys()
               if pinned["schema_defaults"].get(k) != now["schema_defaults"].get(k)}
    assert not changed, (f"schema defaults changed in section(s) {sorted(changed)}: every cell relying on them "
                         f"gets a new identity; if deliberate, run python tests/test_hash_stability.py")
    for name in pinned["cells"].keys() | now["cells"].keys():
        old, new = pinned["cells"].get(name, {}), now["cells"].get(name, {})
        moved = sorted(cell for cell in old.keys() | new.keys() if old.get(cell) != new.get(cell))
        assert not moved, (f"experiment {name}: {len(moved)} cell(s) changed identity (e.g. {moved[0]}); their "
                           f"FINISHED runs no longer count; if deliberate, run python tests/test_hash_stability.py")


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
