"""Facts shared across layers: the ignore label, the ImageNet normalisation."""

#: Mask value of pixels that carry no label (borders, padding, unlabeled regions).
IGNORE = 255
#: ImageNet RGB mean and std (images scaled to 0..1), the normalisation of every pretrained encoder.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
