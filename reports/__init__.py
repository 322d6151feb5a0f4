"""Paper-style result tables and plots built from the MLflow runs of a grid.

``semiseg.reports.tables`` holds the pure pandas logic (runs frame → per-(dataset, backbone) tables),
``semiseg.reports.plots`` the matplotlib figure and ``semiseg.reports.make_tables`` the command line. All MLflow
access goes through :mod:`semiseg.tracking`.
"""
