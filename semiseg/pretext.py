"""Pretrained weights for the demo's tiny encoder: ``semiseg pretext``.

Real semi-supervised segmentation starts from an ImageNet-pretrained encoder, and the methods' gains
depend on it: from random init, a handful of labels gives pseudo-labels too poor to learn from. The
demo's stand-in for ImageNet is the generated ``demo_pretext`` set (:data:`semiseg.data.demo.PRETEXT`):
the same kind of scenes with five *other* shapes in other hues, drawn from other random streams, so
the encoder never sees a demo class, label or image. It is trained fully supervised on all 768
pretext images (recipe: :data:`semiseg.models.registry.DEMO_PRETEXT`), in fp32 and always on 2 CPU threads,
so the file is the same bit for bit wherever the CPU capability and oneDNN ISA are the same (docs/demo.md),
and cached in ``$SEMISEG_CACHE/weights/`` (default
``~/.cache/semiseg``; one weights file, written atomically under a lock, so parallel runs make it once).
A run config asks for it with ``model.pretrained: demo_pretext``; its path and SHA-256 are logged as
the run's ``derived.pretrained_file`` / ``derived.pretrained_sha256`` params.
"""

from __future__ import annotations

import argparse

from semiseg.cli import prog, run_cli
from semiseg.models.registry import DEMO_PRETEXT
from semiseg.runtime import cache_dir, ensure_named_weights


def build_parser() -> argparse.ArgumentParser:
    where = cache_dir() / "weights" / DEMO_PRETEXT.file_name
    return argparse.ArgumentParser(prog=prog("pretext", "semiseg.pretext"), description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=f"the file: {where} ($SEMISEG_CACHE moves it)")


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print(ensure_named_weights(DEMO_PRETEXT.name))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
