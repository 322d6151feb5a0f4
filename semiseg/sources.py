"""Where every downloadable file comes from, and how it is checked (one registry for datasets, lists, weights).

Each :class:`Source` has its official URL, the checksum published for it (``md5:``/``sha256:``) or ``None``
where its publisher gives none, and a ``key``: its path on a mirror (``$SEMISEG_MIRROR/<key>``) and its name
in a checksum registry file (``$SEMISEG_CHECKSUMS``). Files without a published checksum are trusted on first
use: the SHA-256 of the first complete download is pinned in the user's cache and every later use is checked
against it (:mod:`semiseg.download`). Sizes are the publishers' (approximate) figures, for the docs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    key: str  # mirror path and checksum-registry name, e.g. "voc2012/VOCtrainval_11-May-2012.tar"
    url: str
    checksum: str | None = None  # "md5:<hex>" or "sha256:<hex>"; None = trust on first use
    size_mb: int = 0  # published size
    note: str = ""
    sha256_prefix: str = ""  # the leading SHA-256 hex digits a publisher puts in the file name (torchvision)

    @property
    def file_name(self) -> str:
        return self.key.rsplit("/", 1)[-1]


def _gdrive(file_id: str) -> str:
    """The direct-download URL of a public Google Drive file (the official repos link their files there)."""
    return f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t"


_VOC = "http://host.robots.ox.ac.uk/pascal/VOC"
_SBD = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours"
_CITYSCAPES = "https://www.cityscapes-dataset.com/file-handling/?packageID="
_COCO = "http://images.cocodataset.org"

#: dataset → its archives. md5s: the ones torchvision's VOCSegmentation / SBDataset record.
DATASET_ARCHIVES: dict[str, tuple[Source, ...]] = {
    "pascal": (
        Source("voc2012/VOCtrainval_11-May-2012.tar", f"{_VOC}/voc2012/VOCtrainval_11-May-2012.tar",
               "md5:6cd6e144f989b92b3379bac3b3de84fd", 1907, "VOC 2012 trainval: JPEGImages, SegmentationClass"),
        Source("sbd/benchmark.tgz", f"{_SBD}/benchmark.tgz", "md5:82b4d87ceb2ed10f6038a1cba92111cb", 1354,
               "SBD (Hariharan et al.): cls/*.mat class masks of 11355 VOC images"),
    ),
    "cityscapes": (  # needs a (free) Cityscapes account; no checksum is published with the packages
        Source("cityscapes/gtFine_trainvaltest.zip", f"{_CITYSCAPES}1", None, 241, "fine annotations"),
        Source("cityscapes/leftImg8bit_trainvaltest.zip", f"{_CITYSCAPES}3", None, 11264, "left 8-bit images"),
    ),
    "coco": (  # the COCO site publishes no checksums
        Source("coco/train2017.zip", f"{_COCO}/zips/train2017.zip", None, 18432, "118287 train images"),
        Source("coco/val2017.zip", f"{_COCO}/zips/val2017.zip", None, 778, "5000 val images"),
        Source("coco/annotations_trainval2017.zip", f"{_COCO}/annotations/annotations_trainval2017.zip", None, 241,
               "instances_{train,val}2017.json"),
    ),
    "pascal_context": (  # VOC 2010 images (md5 recorded by torchvision) + SemiOVS's released 60-class masks
        Source("voc2010/VOCtrainval_03-May-2010.tar", f"{_VOC}/voc2010/VOCtrainval_03-May-2010.tar",
               "md5:da459979d0c395079b5c75ee67908abb", 1325, "VOC 2010 trainval: JPEGImages"),
        Source("semiovs/ground_truth_pascal_context.zip", "https://github.com/wooseok-shin/SemiOVS/releases/download/"
               "preliminary/ground_truth_pascal_context.zip", None, 0,
               "SemiOVS's SegmentationClassContext60/{train,val} masks (GitHub release; no checksum published)"),
    ),
    "ade20k": (  # MIT Scene Parsing benchmark; no checksum published
        Source("ade20k/ADEChallengeData2016.zip", "http://data.csail.mit.edu/places/ADEchallenge/"
               "ADEChallengeData2016.zip", None, 923, "images and raw annotations (0 = unlabeled, 1..150)"),
    ),
}

#: The UniMatch authors' 81-class COCO masks (``masks/<id>.png`` for train2017 and val2017; the UniMatch README's
#: Google Drive link), preferred by ``prepare coco`` over converting the instances annotations.
COCO_AUTHOR_MASKS = Source("unimatch/coco_masks.zip", _gdrive("166xLerzEEIbU7Mt1UGut-3-VN41FMUb1"), None, 0,
                           "the UniMatch authors' COCO masks; no checksum published")

#: Official split lists: (repository, commit), each file's path under the repository's ``splits/`` and its
#: SHA-256 (computed from the repositories at these commits). COCO's unlabeled lists are not fetched: they are
#: "train minus labeled" (docs/methods.md §1.1).
_V1 = ("LiheYoung/UniMatch", "0324f3dd4a22128105a5eb135d2586c0bb3cc647", "splits/")
_V2 = ("LiheYoung/UniMatch-V2", "f6afb4dfca2d9dcbcee2307e97717954ca75c0ba", "splits/")
_OVS = ("wooseok-shin/SemiOVS", "c205caadf2d2fef9df0ce68a217a581f2441e72a", "semiovs/splits/")
_LISTS: dict[str, tuple[tuple[tuple[str, str, str], str, str], ...]] = {
    "pascal": (
        (_V1, "pascal/1464/labeled.txt", "b20486876df309c57c8230e957b2957fff5392ff5cb11f225e8453ed6c50ba3e"),
        (_V1, "pascal/1464/unlabeled.txt", "3ba331d08fee0751486a8be3f9f269f9efc09faa82a32a703bbb7deda4d66544"),
        (_V1, "pascal/183/labeled.txt", "de3f4680391cb15324402dae17ac0919933d0d9004c11a641c924f3f67147f9f"),
        (_V1, "pascal/183/unlabeled.txt", "39aa3fd2997799c57c7d68d1ab342e2ebf53224ab10c1766a9fcd1554afbfd6a"),
        (_V1, "pascal/1_16/labeled.txt", "0f5e114e6504c8afec6523db91f05503f120d1365cf505e6f4ef99f316d5873b"),
        (_V1, "pascal/1_16/unlabeled.txt", "29b30bf7adb5d39e642c57e3a3f4f26f9d4fb8f145098c430a597ef99160e36f"),
        (_V1, "pascal/1_4/labeled.txt", "a4573ca0fa8f97c4013dba5f8b233e77a1a8dc7877539b1eb18c8206d37227d0"),
        (_V1, "pascal/1_4/unlabeled.txt", "832ccd3a7971b1ed79e77f606a6736fa58d85f88aaf2eb88c856b27af74c847b"),
        (_V1, "pascal/1_8/labeled.txt", "c5ea9bb095158a137e4c1db739b07d54a89af697de24ffd9e576493a4189653f"),
        (_V1, "pascal/1_8/unlabeled.txt", "5246f6e0bec70363a5b898e0d685d37b0afcfab4a71c010e7026555294d9eca9"),
        (_V1, "pascal/366/labeled.txt", "74f6bd1e459a8b46fc204529d70b603769f8a45aef4553df8a5c04b5698e77b7"),
        (_V1, "pascal/366/unlabeled.txt", "591c593546d1dbb65bd4d08ae99fabc1e9958d614c8079c8961422b8b7df7433"),
        (_V1, "pascal/732/labeled.txt", "02c8ec5b62e27364f5bc91eb95bccf54debaa721e9d31c50c07507aea258fd0f"),
        (_V1, "pascal/732/unlabeled.txt", "8ddf828ec616b551447dc402c2c53eb7d0044697a0b6bacd6190ee843ffbf340"),
        (_V1, "pascal/92/labeled.txt", "8a02aa6a1253178b105bd25b36f0a27daeedf6b3959f399aa47d24783f3a8306"),
        (_V1, "pascal/92/unlabeled.txt", "a3eb5ef8d2ae547f131bfa60b8111d21700d458b545741336633d5aa209254d5"),
        (_V1, "pascal/train_aug.txt", "f04ab664c71f84950a3a1fd28544b6851500c81a9aff890c4b9279639a32152c"),
        (_V1, "pascal/u2pl_1_16/labeled.txt", "a58cf5eda18c8e060c8fef0233b388b488e62e5903076fed90b5bd34cf6735d3"),
        (_V1, "pascal/u2pl_1_16/unlabeled.txt", "4f038ee0eef3dc96863906821f2eb78c430941d9151ad78366fdbcc0b9e3aa8f"),
        (_V1, "pascal/u2pl_1_4/labeled.txt", "b740bcf1ac91477ff0df913594ea70a00ced359a007a4050cac487f136470fa4"),
        (_V1, "pascal/u2pl_1_4/unlabeled.txt", "43652ae8048ee32a75df1e27dd56147ad606d65a3721ac056294d6c7fb08ee06"),
        (_V1, "pascal/u2pl_1_8/labeled.txt", "cebe5f2fda695dd72ff3336d6bfef95967c903fe4d404d9827a42c5fbc1dfd8a"),
        (_V1, "pascal/u2pl_1_8/unlabeled.txt", "fc4708a91ce72d15c1bf3515334abcc09d604f83f5110c12a5548af126e6f768"),
        (_V1, "pascal/val.txt", "df002e3a730c57678f63aa3e46a4c827a4066f1dc1814e24d0e8b215075e0c6c"),
    ),
    "cityscapes": (
        (_V1, "cityscapes/1_16/labeled.txt", "64195914dce1231133c7dc611fece213bc3a87fe4e0b73fbd96add7dfa8a2f46"),
        (_V1, "cityscapes/1_16/unlabeled.txt", "7f18e2aefb5e88598910e291a935117daaeef51c6828edeb62f8a6c882be0a79"),
        (_V1, "cityscapes/1_2/labeled.txt", "90d8e29d4d182c3b3def3d1fac02e454868c4ca632f73696bb521aa05e937ee4"),
        (_V1, "cityscapes/1_2/unlabeled.txt", "23d0efaa43a65608b25eb078ed058c53979957e44407d787e3abdda9a795d289"),
        (_V1, "cityscapes/1_30/labeled.txt", "b11041fef70476fb5564af0ef006a8013622da9cf49c7faf4182f3e26eb32742"),
        (_V1, "cityscapes/1_30/unlabeled.txt", "1b8a9b7bb4f9f6f06a3dffe766efe8b10a14a0137637af1738bbb417a5c85dbe"),
        (_V1, "cityscapes/1_4/labeled.txt", "8edd24ae817eed7b49d0a06c95b7bfaf769002c98387e4edeab5e221ab7791c3"),
        (_V1, "cityscapes/1_4/unlabeled.txt", "6fc53258ed2e40f72f4a22b6e20d60a789168fdf6b860033f826e8bee3900e9b"),
        (_V1, "cityscapes/1_8/labeled.txt", "97291dfc509a8c90ee94e1c5fd1f7668c21205b995f53b963ac133f0ed96ee8e"),
        (_V1, "cityscapes/1_8/unlabeled.txt", "5d7d33e39a8bda908e12d7f33ecb3299f93a8596fbe3c5e0cc1f2d3f5d358459"),
        (_V1, "cityscapes/val.txt", "cf5aa35c0e4446bc684b61b6be88e22299ef7b1851852b53fc6a34794f161544"),
        (_V2, "cityscapes/all/train.txt", "c1a3b0d7af0a2bc58a496791b2817e82be4cd67ebe53b3a7724a2bcbf015bc54"),
        (_V2, "cityscapes/all/unlabeled.txt", "66da89a521379d9f20e18d4c843b7eab5b87b932f485b0b88133032af46d5db7"),
    ),
    "coco": (
        (_V1, "coco/1_128/labeled.txt", "06067c0fb879b8e6ab8f4bdab3dfa641e8e4da2990200fa156daa33670329d79"),
        (_V1, "coco/1_256/labeled.txt", "4cdf41b9d3b3afc3734057a605015860501199ed3680370ccb2c677fc159b127"),
        (_V1, "coco/1_32/labeled.txt", "781b5990914f7422ee9e1f6325a914f289e077621b77b9cd066c2d01d33a939e"),
        (_V1, "coco/1_512/labeled.txt", "bd0ff85bf2d35b4641d08c2201257ad5b5f02f85ea0da457f44f0b97c4caeb37"),
        (_V1, "coco/1_64/labeled.txt", "622b84ccbb5dcba32f4f5bb4ffaf1a9cf3e3f1f460b55dc02605fd099ebf1337"),
        (_V1, "coco/val.txt", "5a296a8b638114611e81c3b2257ec1720c8c16300f29ac24fcd8ddf08c9eb6d8"),
    ),
    "ade20k": (
        (_V2, "ade20k/1_16/labeled.txt", "a716e48c18e404ad00258e111290d09c59fd90b6b564283a1e86741a083dda82"),
        (_V2, "ade20k/1_16/unlabeled.txt", "870ac4741548a35488d0e8908180e78272f044b14bbf5b415470c32020959943"),
        (_V2, "ade20k/1_2/labeled.txt", "cf34f0bd73d0f9980a9517cb872dcd66b4ad3901d2f2b4a6e10db715c7f44a45"),
        (_V2, "ade20k/1_2/unlabeled.txt", "47d05419c223cf8c03d3fa9a20dc587376e04a0058ff754e5b449f07a50277b1"),
        (_V2, "ade20k/1_32/labeled.txt", "b5f4e344f278d04dc4b0f3a1ebb349844d5ad8cbab61922275d43211ef1526ad"),
        (_V2, "ade20k/1_32/unlabeled.txt", "9fce0ed18e709ab8251a616e9eea9f4ac2ce0bc661a88ddd44153b977c098a25"),
        (_V2, "ade20k/1_4/labeled.txt", "e657087c6b05ecc7a264820212c21918e280c51b060b831d5bc138114099b1b5"),
        (_V2, "ade20k/1_4/unlabeled.txt", "71a13b5d53bde54026685de734807322c8133d98254cdb96d07e87862d6174fb"),
        (_V2, "ade20k/1_64/labeled.txt", "78f423b10adcb3670e048c02bf43707430ede157036c195b61912dc4bf25602a"),
        (_V2, "ade20k/1_64/unlabeled.txt", "5ed99f84b17e763691c66284c58932d71cf8b9300542ac2b133b28111d83f8f8"),
        (_V2, "ade20k/1_8/labeled.txt", "311d88abc340a887a4e1f87b49e87ba8b4d050cb2ee3a2dfcc01158c2d29f7f0"),
        (_V2, "ade20k/1_8/unlabeled.txt", "75f286c72f247b5d3120fafa4262b654ec9968de39f4fbaf470abbaa82874c9f"),
        (_V2, "ade20k/all/labeled.txt", "52146240194d375841c1759ae63fa18f5c4ddedf8fc9e24008614ebd760cb19d"),
        (_V2, "ade20k/val.txt", "8a733f0c20d8f6cd6450b775a2f9e0d9d328af6d8a3aaf50db55d964d18d584c"),
    ),    "pascal_context": (
        (_OVS, "pc60/1_16/labeled.txt", "264017f4587dd9bae582d063481f3a577abb6dd39ac05ad9281b487ce55116f2"),
        (_OVS, "pc60/1_16/unlabeled.txt", "3a17b7511aa0ce62d2da12c5a34f69a2ae37f54032b675d7f016693225782162"),
        (_OVS, "pc60/1_2/labeled.txt", "b1ee3d58c4e8f40bb2629f4246cd97bb4277ca8f651c3648ea97ca3b2cb29f96"),
        (_OVS, "pc60/1_2/unlabeled.txt", "96f0e1b265e31b715881c5701edae552e926c721564bb56f91bd64265b076276"),
        (_OVS, "pc60/1_32/labeled.txt", "548dae18e56e2c13c0fa7cd65119ee46127cca68b053e497304a1c2696ca08b5"),
        (_OVS, "pc60/1_32/unlabeled.txt", "1f91a6f758d2d4808262fce1a2a7ba71efb6d0a0fc7e4914b946e89986400226"),
        (_OVS, "pc60/1_4/labeled.txt", "a53105c9c24f7e1b31305c10007576c4c05356c34c8c86b60a011b77d9b99967"),
        (_OVS, "pc60/1_4/unlabeled.txt", "cc9c41cb6f73883889c55d4b588dcf01daf2cb49c6f7e5dfc4e0ab1e48ca73aa"),
        (_OVS, "pc60/1_8/labeled.txt", "50eda1075aa4ff6e6172199009d1cffc77aa01bce5d5eec8ebd87f14f5e5bf63"),
        (_OVS, "pc60/1_8/unlabeled.txt", "c7f3ed1237ce6a99c5b857cbe59e2283f4e337f63dcc9663ab8c992863d8f135"),
        (_OVS, "pc60/val.txt", "0a7743e97cfabf32cc1c5bcf8bfb4ba9613048d81e3436476a6ec4a0a480233d"),
    ),
}


def split_sources(dataset: str) -> tuple[tuple[str, Source], ...]:
    """(path under ``splits/<dataset>/``, source) of each official list of ``dataset``."""
    out = []
    for (repo, commit, folder), rel, sha in _LISTS.get(dataset, ()):
        path = f"{folder}{rel}"
        out.append((rel.split("/", 1)[1], Source(f"github/{repo}/{commit}/{path}",
                                                  f"https://raw.githubusercontent.com/{repo}/{commit}/{path}",
                                                  f"sha256:{sha}")))
    return tuple(out)


SPLIT_DATASETS = tuple(_LISTS)


@dataclass(frozen=True)
class PublishedWeights:
    """An encoder's ImageNet (ResNet, Xception) or self-supervised (DINOv2) weights, in the file layout of the
    official code, as ``model.pretrained`` may name them."""

    name: str
    backbone: str
    source: Source


_DINOV2 = "https://dl.fbaipublicfiles.com/dinov2"
_TORCHVISION = "https://download.pytorch.org/models"
_TV_NOTE = "torchvision's ImageNet weights (IMAGENET1K_V1); the file name carries its SHA-256 prefix"
_UNIMATCH_NOTE = "the UniMatch authors' file (Google Drive link of the UniMatch README); no checksum published"
_DINO_NOTE = "Meta's published DINOv2 checkpoint (the UniMatch V2 README's link); no checksum published"

#: name → weights. None publishes a checksum: each is trusted on first use and pinned (see the module doc).
PUBLISHED_WEIGHTS: dict[str, PublishedWeights] = {w.name: w for w in (
    PublishedWeights("resnet50", "resnet50", Source("weights/resnet50.pth", _gdrive(
        "1mqUrqFvTQ0k5QEotk4oiOFyP6B9dVZXS"), None, 100, _UNIMATCH_NOTE)),
    PublishedWeights("resnet101", "resnet101", Source("weights/resnet101.pth", _gdrive(
        "1Rx0legsMolCWENpfvE2jUScT3ogalMO8"), None, 170, _UNIMATCH_NOTE)),
    PublishedWeights("xception", "xception", Source("weights/xception.pth", _gdrive(
        "1_j_mE07tiV24xXOJw4XDze0-a0NAhNVi"), None, 160, _UNIMATCH_NOTE)),
    PublishedWeights("tv_resnet50", "tv_resnet50", Source(
        "weights/resnet50-0676ba61.pth", f"{_TORCHVISION}/resnet50-0676ba61.pth", None, 98, _TV_NOTE, "0676ba61")),
    PublishedWeights("tv_resnet101", "tv_resnet101", Source(
        "weights/resnet101-63fe2227.pth", f"{_TORCHVISION}/resnet101-63fe2227.pth", None, 171, _TV_NOTE, "63fe2227")),
    PublishedWeights("dinov2_small", "dinov2_small", Source(
        "weights/dinov2_vits14_pretrain.pth", f"{_DINOV2}/dinov2_vits14/dinov2_vits14_pretrain.pth", None, 84,
        _DINO_NOTE)),
    PublishedWeights("dinov2_base", "dinov2_base", Source(
        "weights/dinov2_vitb14_pretrain.pth", f"{_DINOV2}/dinov2_vitb14/dinov2_vitb14_pretrain.pth", None, 346,
        _DINO_NOTE)),
    PublishedWeights("dinov2_large", "dinov2_large", Source(
        "weights/dinov2_vitl14_pretrain.pth", f"{_DINOV2}/dinov2_vitl14/dinov2_vitl14_pretrain.pth", None, 1161,
        _DINO_NOTE)),
)}
