"""Paper-style result tables and plots built from the MLflow runs of a grid.

``reports.tables`` holds the pure pandas logic (runs frame → per-(dataset, backbone) tables),
``reports.plots`` the matplotlib figure and ``reports.make_tables`` the command line. All MLflow
access goes through :mod:`semiseg.tracking`.
"""
