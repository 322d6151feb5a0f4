"""Where SemiOVS finds its out-of-distribution images and pseudo-label masks (config section ``semiovs``)."""

from __future__ import annotations

from pathlib import Path

from semiseg.config import RunConfig
from semiseg.data.datasets import read_split
from semiseg.errors import DataError


def ood_source(cfg: RunConfig, data_root: Path) -> tuple[Path, list[tuple[str, str]]]:
    """The OOD root folder and its (image, mask) entries.

    ``semiovs.ood_root`` empty means the dataset's built-in companion; only the demo has one
    (``<data root>_ood``, generated on first use).
    """
    if cfg.semiovs.ood_root:
        root = Path(cfg.semiovs.ood_root).expanduser().resolve()
        if not root.is_dir():
            raise DataError(f"semiovs.ood_root: folder {root} does not exist")
    elif cfg.data.dataset == "demo":
        from semiseg.data.demo_ood import ensure_demo_ood

        root = ensure_demo_ood(data_root.parent / f"{data_root.name}_ood")
    else:
        raise DataError(f"method '{cfg.method}' needs OOD images with pseudo-labels: set semiovs.ood_root (and "
                        f"semiovs.ood_list) for dataset '{cfg.data.dataset}'; semiseg ood predict writes them")
    list_path = Path(cfg.semiovs.ood_list).expanduser()
    list_path = list_path if list_path.is_absolute() else root / list_path
    if not list_path.is_file():
        raise DataError(f"semiovs.ood_list: list file {list_path} does not exist")
    entries = read_split(list_path)
    if not entries:
        raise DataError(f"semiovs.ood_list: {list_path} lists no images")
    return root, entries
