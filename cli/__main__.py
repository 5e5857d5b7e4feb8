"""`python -m tomobile.cli ...` runs the `tomobile` command."""

import sys

from .main import main

sys.exit(main())
