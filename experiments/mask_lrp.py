"""Mask-LRP reproduction entry point: ``python experiments/mask_lrp.py [--rt-examples N ...]``.

The code is experiments/mask_lrp/run.py (settings in config.py); the run that was made, its
exact command and the verdict are in experiments/mask_lrp/results/table.md.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "mask_lrp"))
from run import main  # noqa: E402  pylint: disable=g-import-not-at-top

if __name__ == "__main__":
  main()
