"""A loaded model: its config, pure ``forward``, parameters, tokenizer and label names.

``load_model`` reads a local Hugging Face directory (or a hub id, when online). The
:class:`Model` it returns is a thin host-side handle; every computation goes through the pure
``model.forward(model.params, batch, taps)``.
"""

import dataclasses
import functools
import json
import os
from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx

from jaxplain._compile import jit as _jit
from jaxplain.contracts import Batch, Forward, Outputs, Params, Taps
from jaxplain.errors import InputError, ModelLoadError
from jaxplain.models import convert
from jaxplain.models.config import EncoderConfig, from_hf_config
from jaxplain.models.forward import abstract_encoder, make_forward
from jaxplain.models.tokenize import BUCKETS, encode, resolve_buckets

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "flax_model.msgpack",
                 "pytorch_model.bin")


@dataclasses.dataclass(eq=False)
class Model:
  """A model ready to explain.

  Attributes:
    config: the encoder's :class:`EncoderConfig`.
    forward: ``forward(params, batch, taps) -> Outputs``, made once per model.
    params: the parameter pytree.
    tokenizer: the Hugging Face fast tokenizer, or ``None`` when the directory has none.
    labels: class names in logit order.
    name: where the model came from.
    buckets: the padded lengths :meth:`encode` chooses from (see :meth:`with_buckets`).
  """

  config: EncoderConfig
  forward: Forward
  params: Params
  tokenizer: Any
  labels: tuple[str, ...]
  name: str
  buckets: tuple[int, ...] = BUCKETS

  @property
  def max_length(self) -> int:
    return self.config.max_length

  def encode(self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None,
             max_length: int | None = None, *, truncate: bool = True) -> Batch:
    """Tokenises texts into a padded :class:`Batch` (see :func:`jaxplain.models.tokenize.encode`)."""
    if self.tokenizer is None:
      raise InputError(f"{self.name} has no tokenizer files (tokenizer.json or vocab); save the "
                       "tokenizer beside the weights, or build a Batch of ids yourself.")
    limit = self.max_length if max_length is None else int(max_length)
    if not 2 < limit <= self.max_length:
      raise InputError(f"max_length {limit} is outside 3..{self.max_length}, the model's range.")
    return encode(self.tokenizer, texts, text_pairs, limit, truncate=truncate,
                  buckets=self.buckets)

  def with_buckets(self, buckets: str | Sequence[int]) -> "Model":
    """The same model padding batches to other lengths: ``"fine"``, ``"default"`` or a list.

    ``"fine"`` (:data:`jaxplain.models.FINE_BUCKETS`, steps of 4 up to 64 tokens) pads
    less and compiles more shapes: about 1.10x IG-50 throughput on Rotten Tomatoes snippets on
    the CPU, for large corpora. Parameters, tokenizer and compiled programs are shared.

    Raises:
      InputError: an unknown preset, or lengths that are not increasing positive integers.
    """
    return dataclasses.replace(self, buckets=resolve_buckets(buckets))

  def outputs(self, batch: Batch, taps: Taps = Taps()) -> Outputs:
    """Everything the model computes for ``batch`` (jit-compiled, cached per shape)."""
    return _jit_forward(self.forward)(self.params, batch.device_part(), taps)

  def __call__(self, batch: Batch | str | Sequence[str]) -> jax.Array:
    """Logits for a batch (or texts, encoded with defaults)."""
    if not isinstance(batch, Batch):
      batch = self.encode(batch)
    return self.outputs(batch).logits

  def tokens(self, batch: Batch) -> list[list[str]]:
    """Token strings per example, real tokens only (ids as strings without a tokenizer)."""
    ids = np.asarray(batch.input_ids)
    mask = np.asarray(batch.attention_mask).astype(bool)
    if self.tokenizer is None:  # no vocabulary: show the ids
      return [[str(t) for t in ids[i][mask[i]]] for i in range(ids.shape[0])]
    return [self.tokenizer.convert_ids_to_tokens(ids[i][mask[i]].tolist())
            for i in range(ids.shape[0])]

  def resolve_target(self, target: Any) -> Any:
    """``target`` with label names (``"positive"``, any case) replaced by class indices.

    A name, or a list or array holding names, becomes indices; anything else is returned as
    it is (:meth:`check_target` checks it).

    Raises:
      InputError: a name that is not one of :attr:`labels`.
    """
    if isinstance(target, (str, np.str_)) or (isinstance(target, np.ndarray) and target.ndim == 0
                                              and target.dtype.kind in "US"):
      return label_index(str(target), self.labels)
    if isinstance(target, (list, tuple, np.ndarray)) and any(
        isinstance(t, (str, np.str_)) for t in np.asarray(target, object).ravel()):
      return [label_index(t, self.labels) if isinstance(t, (str, np.str_)) else t
              for t in target]
    return target

  def check_target(self, target: Any, batch_size: int) -> None:
    """Raises :class:`InputError` for a class index outside ``0..C-1``."""
    if target is None or callable(target):
      return
    t = np.asarray(target)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != batch_size):
      raise InputError(f"target has shape {t.shape}; pass an int or one class per example "
                       f"({batch_size}).")
    if not np.issubdtype(t.dtype, np.integer):
      raise InputError(f"target {target!r} is not an integer class index.")
    c = len(self.labels)
    if t.size and (t.min() < 0 or t.max() >= c):
      raise InputError(f"target class {int(t.max() if t.max() >= c else t.min())} is out of "
                       f"range for {c} classes {list(self.labels)}; pass 0..{c - 1}.")


def label_index(label: str, labels: Sequence[str]) -> int:
  """The class index of ``label``: its exact name, else the one label equal ignoring case.

  Raises:
    InputError: no label (or more than one, ignoring case) matches.
  """
  for i, name in enumerate(labels):
    if str(name) == label:
      return i
  matches = [i for i, name in enumerate(labels) if str(name).lower() == str(label).lower()]
  if len(matches) == 1:
    return matches[0]
  raise InputError(f"unknown target {label!r}; pass a class index 0..{len(labels) - 1} or one "
                   f"of the labels: {', '.join(map(str, labels))}.")


@functools.cache
def _jit_forward(forward: Forward):
  return _jit(forward)


def model_from_params(config: EncoderConfig, params: Params, tokenizer: Any = None,
                      labels: Sequence[str] | None = None, name: str = "model") -> Model:
  """Wraps a parameter pytree into a :class:`Model` (used after fine-tuning or in tests)."""
  graphdef, _ = abstract_encoder(config)
  labels = tuple(labels) if labels else tuple(f"LABEL_{i}" for i in range(config.num_labels))
  return Model(config=config, forward=make_forward(graphdef), params=params, tokenizer=tokenizer,
               labels=labels, name=name)


def _resolve(path_or_hub_id: str) -> str:
  path = os.path.expanduser(str(path_or_hub_id))
  if os.path.isdir(path):
    return path
  looks_local = (path.startswith((".", "/", "~")) or os.sep in path.strip("/").replace("/", "", 1)
                 or os.path.exists(path))
  if looks_local:
    raise ModelLoadError(f"no model directory at {path}; pass a directory with config.json and "
                         "weights, or a Hugging Face hub id such as bert-base-uncased.")
  try:
    from huggingface_hub import snapshot_download  # pylint: disable=g-import-not-at-top
    return snapshot_download(path, allow_patterns=["*.json", "*.txt", "*.safetensors",
                                                   "*.msgpack", "*.model", "merges.txt"])
  except Exception as e:  # offline, unknown id, gated repo...
    raise ModelLoadError(
        f"{path} is not a local directory and could not be fetched from the Hugging Face hub "
        f"({type(e).__name__}). Check the id, or download the model where you are online and "
        "pass its directory.") from None


def _load_tokenizer(directory: str) -> Any:
  files = set(os.listdir(directory))
  if not files & {"tokenizer.json", "vocab.txt", "vocab.json"}:
    return None
  from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top
  try:
    tok = AutoTokenizer.from_pretrained(directory, use_fast=True)
  except Exception as e:
    raise ModelLoadError(f"the tokenizer in {directory} could not be loaded "
                         f"({type(e).__name__}: {e}).") from None
  if not getattr(tok, "is_fast", False):
    raise ModelLoadError(f"the tokenizer in {directory} is not a fast tokenizer; jaxplain needs "
                         "tokenizer.json (save it with a recent transformers).")
  return tok


def load_model(path_or_hub_id: str | os.PathLike, *, head: str | None = None,
               dtype: str = "float32", labels: Sequence[str] | None = None) -> Model:
  """Loads a BERT, RoBERTa, DistilBERT or ELECTRA checkpoint.

  Args:
    path_or_hub_id: a local Hugging Face directory (``config.json`` plus ``model.safetensors``,
      sharded safetensors, ``flax_model.msgpack`` or ``pytorch_model.bin``), or a hub id (needs
      a network).
    head: ``"sequence_classification"``, ``"token_classification"``, ``"question_answering"``,
      ``"masked_lm"`` or ``"embedding"``; ``None`` reads ``architectures`` in ``config.json``.
    dtype: compute dtype, ``"float32"`` (default) or ``"bfloat16"``.
    labels: class names, overriding ``id2label``.
  Returns:
    A :class:`Model`.
  Raises:
    ModelLoadError: unknown path or id, no ``config.json``, unsupported family, corrupt weights.
  Example:
    >>> model = jaxplain.load_model("path/to/bert-sst2")           # doctest: +SKIP
    >>> batch = model.encode(["a charming film"])                   # doctest: +SKIP
  """
  directory = _resolve(str(path_or_hub_id))
  cfg_path = os.path.join(directory, "config.json")
  if not os.path.exists(cfg_path):
    raise ModelLoadError(f"{directory} has no config.json; pass the directory a Hugging Face "
                         "model was saved to (save_pretrained writes config.json).")
  try:
    with open(cfg_path) as f:
      hf = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ModelLoadError(f"{cfg_path} is not valid JSON ({e}); the file is corrupt.") from None
  if dtype not in ("float32", "bfloat16"):
    raise ModelLoadError(f"dtype {dtype!r} is not supported; use float32 or bfloat16.")
  config = from_hf_config(hf, head).replace(dtype=dtype)
  if not set(os.listdir(directory)) & set(_WEIGHT_FILES):
    raise ModelLoadError(f"no weights in {directory}: expected one of {', '.join(_WEIGHT_FILES)}.")
  weights = convert.read_checkpoint(directory)
  graphdef, abstract = abstract_encoder(config)
  pure, _ = convert.to_params(config, weights, nnx.to_pure_dict(abstract), directory)
  params = abstract
  nnx.replace_by_pure_dict(params, jax.tree.map(jax.numpy.asarray, pure))
  if labels is None:
    id2label = hf.get("id2label") or {}
    labels = [id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))
              for i in range(config.num_labels)] if id2label else None
  del graphdef  # model_from_params makes the forward from the same graph
  return model_from_params(config, params, _load_tokenizer(directory), labels,
                           name=str(path_or_hub_id))
