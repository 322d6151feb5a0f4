"""Launchers: run an experiment's cells locally (and, later, on SLURM or Ray)."""
