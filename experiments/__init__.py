"""The experiment registry: named grids of runs (see :mod:`semiseg.experiments.registry`)."""

from semiseg.experiments.registry import Cell, Experiment, expand, list_experiments, load_experiment

__all__ = ["Cell", "Experiment", "expand", "list_experiments", "load_experiment"]
