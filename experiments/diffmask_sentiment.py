"""Entry point: DiffMask on the default sentiment model (see experiments/diffmask_sentiment/run.py)."""

import os
import runpy
import sys

if __name__ == "__main__":
  here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffmask_sentiment")
  sys.argv[0] = os.path.join(here, "run.py")
  runpy.run_path(sys.argv[0], run_name="__main__")
