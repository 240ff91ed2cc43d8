"""Entry point: DiffMask on the authors' toy counting task (see experiments/diffmask_toy/README.md)."""

import os
import runpy
import sys

if __name__ == "__main__":
  here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffmask_toy")
  sys.argv[0] = os.path.join(here, "run.py")
  runpy.run_path(sys.argv[0], run_name="__main__")
