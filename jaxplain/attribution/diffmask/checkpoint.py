"""Saving and loading DiffMask gates and training states with orbax.

Two on-disk formats, both directories:

- **gates** (what ``explain`` reads): ``meta.json`` (variant, the model shape the gates were
  trained for, the probe sizes) and ``params/`` (an orbax ``StandardCheckpointer`` tree of
  :class:`~jaxplain.attribution.diffmask.probes.Gates`). ``train_gates`` writes the selected
  gates to ``<out_dir>/gates``.
- **training checkpoints** (what ``train_gates`` resumes from): ``<out_dir>/checkpoints/<step>``
  from an orbax ``CheckpointManager``, holding the whole training state (gates, optimiser
  states, multipliers, running statistics) plus a JSON record of the run.

Every failure a user can cause (no such directory, a corrupt or truncated file, gates for another
model) raises :class:`~jaxplain.errors.JaxplainError` with what to do.
"""

import json
import os
from typing import Any

import jax
import jax.numpy as jnp

from jaxplain.attribution.diffmask.probes import VARIANTS, Gates
from jaxplain.errors import InputError, ModelLoadError

FORMAT = "jaxplain.diffmask.gates/1"


def _ocp():
  """orbax.checkpoint, imported on first use (it costs seconds; ``import jaxplain`` must not)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp

_META, _PARAMS = "meta.json", "params"


def gates_meta(gates: Gates) -> dict[str, Any]:
  """The JSON description of ``gates``: enough to rebuild their shapes and check a model."""
  v1 = gates.probes["v1"]
  return {"format": FORMAT, "variant": gates.variant, "num_layers": gates.num_layers,
          "hidden_size": gates.hidden_size, "embedding_size": gates.embedding_size,
          "probe_in": int(v1.shape[1]), "probe_width": int(v1.shape[2]),
          "baseline_shape": list(gates.baseline.shape)}


def abstract_gates(meta: dict[str, Any]) -> Gates:
  """``Gates`` of ``jax.ShapeDtypeStruct`` leaves described by ``meta`` (orbax restore target)."""
  k, din, p = meta["num_layers"] + 2, meta["probe_in"], meta["probe_width"]
  s = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
  probes = {"v1": s(k, din, p), "g1": s(k, p), "b1": s(k, p), "v2": s(k, p), "g2": s(k),
            "b2": s(k), "bias": s(k)}
  return Gates(probes, s(*meta["baseline_shape"]), meta["variant"], meta["num_layers"],
               meta["hidden_size"], meta["embedding_size"])


def save_gates(path: str | os.PathLike, gates: Gates) -> str:
  """Writes ``gates`` to the directory ``path`` (replacing what is there); returns the path."""
  path = os.path.abspath(os.fspath(path))
  try:
    os.makedirs(path, exist_ok=True)
    ckptr = _ocp().StandardCheckpointer()
    ckptr.save(os.path.join(path, _PARAMS), jax.device_get(gates), force=True)
    ckptr.wait_until_finished()
    with open(os.path.join(path, _META + ".tmp"), "w") as f:
      json.dump(gates_meta(gates), f, indent=1)
    os.replace(os.path.join(path, _META + ".tmp"), os.path.join(path, _META))
  except OSError as e:
    raise InputError(f"cannot write DiffMask gates to {path} ({e.strerror or e}); choose a "
                     "writable output directory.") from None
  return path


def load_gates(path: str | os.PathLike, config: Any = None) -> Gates:
  """Reads gates written by :func:`save_gates` (or a ``train_gates`` output directory).

  This is also the loader of ``attribute(..., method="diffmask", gates=PATH)``
  (``PATH_HYPERPARAMETERS["gates"]``), called with the model's config.

  Args:
    path: the gates directory, or the ``out_dir`` of :func:`train_gates` (its ``gates/``).
    config: optional model config (anything with ``num_layers``, ``hidden_size`` and
      ``embedding_size``, e.g. :class:`jaxplain.models.EncoderConfig`): the gates must have been
      trained for a model of that shape.
  Returns:
    :class:`Gates`.
  Raises:
    ModelLoadError: nothing there, or the files are corrupt or from another program.
    InputError: ``config`` given and the gates were trained for a model of another shape.
  Example:
    >>> gates = load_gates("runs/diffmask/input", model.config)    # doctest: +SKIP
  """
  gates = _load_gates(path)
  if config is not None:
    emb = getattr(config, "embedding_size", None) or config.hidden_size
    check_gates_shape(gates, int(config.num_layers), int(config.hidden_size), int(emb))
  return gates


def _load_gates(path: str | os.PathLike) -> Gates:
  if not isinstance(path, (str, os.PathLike)):
    raise InputError(f"gates must be the path of saved DiffMask gates, got "
                     f"{type(path).__name__}.")
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if os.path.isdir(os.path.join(path, "gates")) and not os.path.exists(os.path.join(path, _META)):
    path = os.path.join(path, "gates")
  meta_path = os.path.join(path, _META)
  if not os.path.exists(meta_path):
    raise ModelLoadError(f"no DiffMask gates at {path} ({_META} missing); train them first with "
                         "jaxplain.attribution.diffmask.train_gates (CLI: jaxplain diffmask "
                         "train) and pass its output directory.")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    if meta.get("format") != FORMAT or meta.get("variant") not in VARIANTS:
      raise ValueError("unknown format")
    target = abstract_gates(meta)
  except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
    raise ModelLoadError(f"{meta_path} is corrupt or not a jaxplain DiffMask gates file "
                         f"({type(e).__name__}: {e}); retrain the gates.") from None
  try:
    gates = _ocp().StandardCheckpointer().restore(os.path.join(path, _PARAMS), target)
  except Exception as e:  # orbax raises many types for truncated or foreign files
    raise ModelLoadError(f"the DiffMask gates in {path} are corrupt or incomplete "
                         f"({type(e).__name__}); retrain them or restore the directory from a "
                         "backup.") from None
  return jax.tree.map(jnp.asarray, gates)


def check_gates_shape(gates: Gates, num_layers: int, hidden_size: int,
                      embedding_size: int) -> None:
  """Raises :class:`InputError` when ``gates`` were trained for a model of another shape."""
  have = (gates.num_layers, gates.hidden_size, gates.embedding_size)
  want = (num_layers, hidden_size, embedding_size)
  if have != want:
    raise InputError(
        f"these DiffMask gates were trained for a model with {have[0]} layers, hidden size "
        f"{have[1]} and embedding size {have[2]}, but this model has {want[0]} layers, hidden "
        f"size {want[1]} and embedding size {want[2]}; train gates for this model with "
        "train_gates (CLI: jaxplain diffmask train).")


def checkpoint_manager(directory: str, max_to_keep: int = 2) -> Any:
  """A synchronous orbax ``CheckpointManager`` for training states under ``directory``."""
  ocp = _ocp()
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save_state(manager: Any, step: int, state: Any, record: dict) -> None:
  """Saves the training ``state`` pytree and the JSON ``record`` at ``step``."""
  ocp = _ocp()
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(jax.device_get(state)),
                                             record=ocp.args.JsonSave(record)), force=True)
  manager.wait_until_finished()


def restore_state(manager: Any, target: Any) -> tuple[int, Any, dict] | None:
  """The latest ``(step, state, record)`` under the manager, or ``None`` when there is none."""
  ocp = _ocp()
  step = manager.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)),
                          target)
  try:
    out = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                        record=ocp.args.JsonRestore()))
  except Exception as e:
    raise ModelLoadError(f"the training checkpoint at step {step} in {manager.directory} is "
                         f"corrupt or from another configuration ({type(e).__name__}); delete "
                         "that directory to start over, or use a new output directory.") from None
  return step, jax.tree.map(jnp.asarray, out.state), dict(out.record)
