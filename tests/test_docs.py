"""The Python examples of README.md and docs/*.md run as written, on the real default model.

Each file's ```python blocks run in order in one namespace, as a reader would paste them. The
blocks check their own claims with ``assert`` where they make one.
"""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", "docs/gradients.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(page: str) -> list[str]:
  with open(os.path.join(ROOT, page), encoding="utf-8") as f:
    return BLOCK.findall(f.read())


@pytest.mark.parametrize("page", PAGES)
def test_python_examples_run(page):
  blocks = _blocks(page)
  assert blocks, f"{page} has no python example"
  namespace = {"__name__": "__docs__"}
  for i, code in enumerate(blocks):
    try:
      exec(compile(code, f"{page}[python block {i}]", "exec"), namespace)  # pylint: disable=exec-used
    except Exception as e:
      raise AssertionError(f"{page}, python block {i} failed:\n{code}") from e
