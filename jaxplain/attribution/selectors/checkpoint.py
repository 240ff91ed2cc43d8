"""Saving and loading trained interpretation models (orbax), with the shape they were made for.

A selector is only meaningful on the encoder it was trained over: the metadata beside the
parameters records the model kind, k, hidden size and class count, and :func:`load_selector`
refuses a selector trained for another model shape.
"""

import dataclasses
import json
import os
from typing import Any

import jax
import numpy as np

from jaxplain.errors import InputError

_META = "selector.json"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Selector:
  """A trained interpretation model: parameters plus static metadata.

  Attributes:
    params: ``{"selector": ..., "predictor": ...}`` arrays.
    kind: ``"attention"`` or ``"l2x"`` (static).
    k: tokens selected by L2X (static).
    hidden: hidden size of the encoder it reads (static).
    classes: output classes (static).
  """

  params: dict[str, Any]
  kind: str = dataclasses.field(metadata=dict(static=True), default="l2x")
  k: int = dataclasses.field(metadata=dict(static=True), default=5)
  hidden: int = dataclasses.field(metadata=dict(static=True), default=384)
  classes: int = dataclasses.field(metadata=dict(static=True), default=2)


def save_selector(path: str | os.PathLike, selector: Selector) -> None:
  """Writes ``path/selector.json`` and ``path/params/`` (orbax)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(os.fspath(path))
  os.makedirs(path, exist_ok=True)
  params_dir = os.path.join(path, "params")
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(params_dir, jax.tree.map(np.asarray, selector.params), force=True)
  meta = {"kind": selector.kind, "k": selector.k, "hidden": selector.hidden,
          "classes": selector.classes}
  tmp = os.path.join(path, _META + ".tmp")
  with open(tmp, "w") as f:
    json.dump(meta, f)
  os.replace(tmp, os.path.join(path, _META))


def load_selector(path: str | os.PathLike, hidden: int | None = None) -> Selector:
  """Reads a selector; ``hidden`` (the explained model's hidden size) is checked against it."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(os.fspath(path))
  meta_path = os.path.join(path, _META)
  if not os.path.isfile(meta_path):
    raise InputError(f"no trained selector at {path} (missing {_META}); train one with "
                     "jaxplain.attribution.selectors.train and save_selector().")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    with ocp.StandardCheckpointer() as ckpt:
      params = ckpt.restore(os.path.join(path, "params"))
  except Exception as e:  # corrupt JSON or orbax files
    raise InputError(f"the selector at {path} is corrupt or incomplete ({type(e).__name__}); "
                     "train and save it again.") from None
  if hidden is not None and int(meta["hidden"]) != int(hidden):
    raise InputError(f"the selector at {path} was trained for a model with hidden size "
                     f"{meta['hidden']}, but this model's is {hidden}; train a selector for it.")
  return Selector(params=jax.tree.map(np.asarray, params), kind=meta["kind"], k=int(meta["k"]),
                  hidden=int(meta["hidden"]), classes=int(meta["classes"]))
