"""semiseg: one training engine for semi-supervised semantic segmentation methods."""

__version__ = "0.1.0"
