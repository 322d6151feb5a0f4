"""A loopback HTTP mirror (Range support, a cut-transfer mode, request log) and tiny archives in the real formats
of the official datasets, for the download/prepare tests."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image

from semiseg.data.catalog import voc_palette

PALETTE = [v for c in voc_palette(256) for v in c]


class Mirror:
    """Serves ``folder`` on 127.0.0.1: HEAD, GET and ``Range: bytes=N-``. A path in ``cut`` gets its first GET
    cut after half its bytes (the full Content-Length announced, the connection closed)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.cut, self.log = folder, set(), []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, body_wanted: bool) -> None:
                rel = self.path.lstrip("/")
                mirror.log.append((self.command, rel, self.headers.get("Range")))
                path = mirror.folder / rel
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if not body_wanted:
                    return
                if rel in mirror.cut and self.command == "GET":
                    mirror.cut.discard(rel)
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

            def do_HEAD(self):
                self._send(False)

            def do_GET(self):
                self._send(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Mirror":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def put(self, key: str, data: bytes) -> str:
        """Serve ``data`` at ``<url>/<key>``; returns its ``sha256sum`` line (for a checksum registry)."""
        path = self.folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{hashlib.sha256(data).hexdigest()}  {key}\n"

    def gets(self, key: str) -> list:
        return [entry for entry in self.log if entry[0] == "GET" and entry[1] == key]


def jpeg(h: int, w: int, seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def png(mask: np.ndarray, palette: bool = False) -> bytes:
    image = Image.fromarray(mask.astype(np.uint8), mode="L")
    if palette:
        image = image.convert("P")
        image.putpalette(PALETTE)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def sbd_mat(segmentation: np.ndarray) -> bytes:
    """An SBD ``cls/<id>.mat`` as the benchmark ships it: struct ``GTcls`` with Segmentation, Boundaries,
    CategoriesPresent."""
    buf = io.BytesIO()
    categories = np.unique(segmentation[segmentation > 0]).astype(np.uint8)
    boundaries = np.empty((len(categories), 1), dtype=object)
    for row, category in enumerate(categories):  # a sparse boundary map per category, as in the benchmark
        boundaries[row, 0] = scipy.sparse.csc_matrix(segmentation == category)
    scipy.io.savemat(buf, {"GTcls": {"Segmentation": segmentation.astype(np.uint8), "Boundaries": boundaries,
                                     "CategoriesPresent": categories}})
    return buf.getvalue()


# The tiny Pascal stand-in: images a, b, c (6x8); VOC has a mask for a; SBD for a (different) and b.
H, W = 6, 8
IDS = ("2007_000001", "2008_000002", "2009_000003")
VOC_MASK_A = np.zeros((H, W), np.uint8)
VOC_MASK_A[1:4, 2:6] = 15
VOC_MASK_A[0, :] = 255  # void border, as VOC draws around objects
SBD_MASK_A = np.full((H, W), 3, np.uint8)  # differs from VOC: VOC must win
SBD_MASK_B = np.zeros((H, W), np.uint8)
SBD_MASK_B[2:5, 0:3] = 7
SBD_MASK_B[:, 7] = 20


def pascal_archives() -> dict[str, bytes]:
    a, b, c = IDS
    voc = {f"VOCdevkit/VOC2012/JPEGImages/{i}.jpg": jpeg(H, W, n) for n, i in enumerate(IDS)}
    voc[f"VOCdevkit/VOC2012/SegmentationClass/{a}.png"] = png(VOC_MASK_A, palette=True)
    voc["VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt"] = f"{a}\n".encode()
    sbd = {f"benchmark_RELEASE/dataset/cls/{a}.mat": sbd_mat(SBD_MASK_A),
           f"benchmark_RELEASE/dataset/cls/{b}.mat": sbd_mat(SBD_MASK_B),
           f"benchmark_RELEASE/dataset/img/{b}.jpg": jpeg(H, W, 1),
           "benchmark_RELEASE/dataset/train.txt": f"{a}\n{b}\n".encode()}
    return {"voc2012/VOCtrainval_11-May-2012.tar": tar_bytes(voc),
            "sbd/benchmark.tgz": tar_bytes(sbd, "w:gz")}


def pascal_lists() -> dict[str, bytes]:
    """Stand-in contents for every official Pascal list (same keys as the real ones)."""
    from semiseg.sources import split_sources

    a, b, _ = IDS
    pair = lambda i: f"JPEGImages/{i}.jpg SegmentationClass/{i}.png\n"  # noqa: E731
    out = {}
    for rel, source in split_sources("pascal"):
        text = pair(b) if rel.endswith("unlabeled.txt") else pair(a) + pair(b) if rel == "train_aug.txt" else pair(a)
        out[source.key] = text.encode()
    return out


def serve(mirror: Mirror, files: dict[str, bytes], registry: Path) -> None:
    """Serve ``files`` and append their SHA-256s to the checksum registry file."""
    with open(registry, "a") as f:
        for key, data in files.items():
            f.write(mirror.put(key, data))


def coco_json(images: list[dict], annotations: list[dict]) -> bytes:
    from semiseg.data.catalog import COCO_CLASSES

    ids = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]  # the 80 COCO ids
    categories = [{"id": i, "name": n, "supercategory": "x"} for i, n in zip(ids, COCO_CLASSES[1:])]
    return json.dumps({"images": images, "annotations": annotations, "categories": categories}).encode()
