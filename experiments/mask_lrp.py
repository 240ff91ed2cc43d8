"""Mask-LRP reproduction entry point: ``python experiments/mask_lrp.py [--rt-examples N ...]``.

See experiments/mask_lrp/README.md; the code is experiments/mask_lrp/run.py.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "mask_lrp"))
from run import main  # noqa: E402  pylint: disable=g-import-not-at-top

if __name__ == "__main__":
  main()
