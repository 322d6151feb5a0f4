"""Facts about the real datasets (docs/methods.md §1.1): class names in index order, palettes, official split sizes.

Pure data; :mod:`semiseg.data.datasets` turns it into registered dataset specs.
"""

from __future__ import annotations

PASCAL_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "dining table", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train", "tv/monitor")

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")

#: The official Cityscapes colours of the 19 train ids (cityscapesscripts' labels.py).
CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32))

#: Index 0 is named 'void' in the UniMatch code but is the real, evaluated background class.
COCO_CLASSES = (
    "void", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag")

PASCAL_CONTEXT_CLASSES = (
    "background", "aeroplane", "bag", "bed", "bedclothes", "bench", "bicycle", "bird", "boat", "book", "bottle",
    "building", "bus", "cabinet", "car", "cat", "ceiling", "chair", "cloth", "computer", "cow", "cup", "curtain",
    "dog", "door", "fence", "floor", "flower", "food", "grass", "ground", "horse", "keyboard", "light", "motorbike",
    "mountain", "mouse", "person", "plate", "platform", "potted plant", "road", "rock", "sheep", "shelves",
    "sidewalk", "sign", "sky", "snow", "sofa", "dining table", "track", "train", "tree", "truck", "tv/monitor",
    "wall", "water", "window", "wood")


def voc_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map (bit-interleaved class index), the usual default for index masks."""
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append((r, g, b))
    return tuple(colours)


#: Official split sizes (docs/methods.md §1.1 "Split names and entry counts"): list path → entry count.
#: ``<split>/labeled.txt`` and ``<split>/unlabeled.txt`` per split, plus full-set and val lists.
OFFICIAL_COUNTS: dict[str, dict[str, int]] = {
    "pascal": {
        **{f"{s}/labeled.txt": n for s, n in (("92", 92), ("183", 183), ("366", 366), ("732", 732), ("1464", 1464),
                                              ("1_16", 662), ("1_8", 1323), ("1_4", 2646), ("u2pl_1_16", 662),
                                              ("u2pl_1_8", 1323), ("u2pl_1_4", 2646))},
        **{f"{s}/unlabeled.txt": n for s, n in (("92", 10490), ("183", 10399), ("366", 10216), ("732", 9850),
                                                ("1464", 9118), ("1_16", 9920), ("1_8", 9259), ("1_4", 7936),
                                                ("u2pl_1_16", 9920), ("u2pl_1_8", 9259), ("u2pl_1_4", 7936))},
        "train_aug.txt": 10582, "all/labeled.txt": 10582, "val.txt": 1449,
    },
    "cityscapes": {
        **{f"{s}/labeled.txt": n for s, n in (("1_30", 100), ("1_16", 186), ("1_8", 372), ("1_4", 744),
                                              ("1_2", 1488))},
        **{f"{s}/unlabeled.txt": n for s, n in (("1_30", 2875), ("1_16", 2789), ("1_8", 2603), ("1_4", 2231),
                                                ("1_2", 1487))},
        "all/train.txt": 2975, "all/unlabeled.txt": 19998, "val.txt": 500,
    },
    "coco": {
        **{f"{s}/labeled.txt": n for s, n in (("1_512", 232), ("1_256", 463), ("1_128", 925), ("1_64", 1849),
                                              ("1_32", 3697))},
        **{f"{s}/unlabeled.txt": 118287 - n for s, n in (("1_512", 232), ("1_256", 463), ("1_128", 925),
                                                         ("1_64", 1849), ("1_32", 3697))},
        "train.txt": 118287, "all/train.txt": 118287, "val.txt": 5000,
    },
    "ade20k": {  # UniMatch V2's lists (PrevMatch's 1_128 and its one-image-different 1_32 are not official here)
        **{f"{s}/labeled.txt": n for s, n in (("1_64", 316), ("1_32", 631), ("1_16", 1263), ("1_8", 2526),
                                              ("1_4", 5052), ("1_2", 10105))},
        **{f"{s}/unlabeled.txt": n for s, n in (("1_64", 19894), ("1_32", 19579), ("1_16", 18947), ("1_8", 17684),
                                                ("1_4", 15158), ("1_2", 10105))},
        "all/labeled.txt": 20210, "val.txt": 2000,
    },
    "pascal_context": {
        **{f"{s}/labeled.txt": n for s, n in (("1_32", 156), ("1_16", 312), ("1_8", 624), ("1_4", 1249),
                                              ("1_2", 2498))},
        **{f"{s}/unlabeled.txt": n for s, n in (("1_32", 4840), ("1_16", 4684), ("1_8", 4372), ("1_4", 3747),
                                                ("1_2", 2498))},
        "val.txt": 5104,
    },
}
