"""`python -m tomobile.cli ...` runs the `tomobile` command."""

from .main import run

run()
