"""Hugging Face checkpoints -> encoder parameters: one regex key table per family.

Every weights format is first read into one flat ``{torch_name: float32 array}`` dict with
PyTorch's layout (linear weights ``[out, in]``): ``model.safetensors`` (single or sharded),
``flax_model.msgpack`` (HF Flax names, transposed back), or ``pytorch_model.bin`` when torch is
installed (loaded with ``weights_only=True``, so a checkpoint can never run code). The family's
table then maps names onto the encoder's parameter paths. Missing parameters are an error that
names them; keys the model does not use are reported by name.
"""

import json
import os
import re
import warnings
from typing import Any, Mapping

import numpy as np

from jaxplain.errors import ModelLoadError
from jaxplain.models.config import EncoderConfig

_BASE_PREFIXES = ("bert.", "roberta.", "distilbert.", "electra.")

# torch name (after the base prefix is stripped) -> encoder path. "{i}" is a layer index.
_BERT_LIKE = {
    r"embeddings\.word_embeddings\.weight": "embeddings.word.embedding",
    r"embeddings\.position_embeddings\.weight": "embeddings.position.embedding",
    r"embeddings\.token_type_embeddings\.weight": "embeddings.token_type.embedding",
    r"embeddings\.LayerNorm\.(weight|gamma)": "embeddings.norm.scale",
    r"embeddings\.LayerNorm\.(bias|beta)": "embeddings.norm.bias",
    r"embeddings_project\.weight": "embeddings.project.kernel",
    r"embeddings_project\.bias": "embeddings.project.bias",
    r"encoder\.layer\.(\d+)\.attention\.self\.query\.(weight|bias)": "layers.{0}.query.{1}",
    r"encoder\.layer\.(\d+)\.attention\.self\.key\.(weight|bias)": "layers.{0}.key.{1}",
    r"encoder\.layer\.(\d+)\.attention\.self\.value\.(weight|bias)": "layers.{0}.value.{1}",
    r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)": "layers.{0}.attn_out.{1}",
    r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias|gamma|beta)":
        "layers.{0}.attn_norm.{1}",
    r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)": "layers.{0}.ffn_in.{1}",
    r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)": "layers.{0}.ffn_out.{1}",
    r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias|gamma|beta)":
        "layers.{0}.ffn_norm.{1}",
    r"qa_outputs\.(weight|bias)": "head.out.{0}",
}
_BERT_HEADS = {
    r"pooler\.dense\.(weight|bias)": "head.pooler.{0}",
    r"classifier\.(weight|bias)": "head.out.{0}",
    r"cls\.predictions\.transform\.dense\.(weight|bias)": "head.transform.{0}",
    r"cls\.predictions\.transform\.LayerNorm\.(weight|bias|gamma|beta)":
        "head.transform_norm.{0}",
    r"cls\.predictions\.bias": "head.decoder_bias",
}
_ROBERTA_ELECTRA_HEADS = {
    r"classifier\.dense\.(weight|bias)": "head.dense.{0}",
    r"classifier\.out_proj\.(weight|bias)": "head.out.{0}",
    r"classifier\.(weight|bias)": "head.out.{0}",  # token classification
    r"lm_head\.dense\.(weight|bias)": "head.transform.{0}",
    r"lm_head\.layer_norm\.(weight|bias)": "head.transform_norm.{0}",
    r"lm_head\.bias": "head.decoder_bias",
    r"generator_predictions\.dense\.(weight|bias)": "head.transform.{0}",
    r"generator_predictions\.LayerNorm\.(weight|bias)": "head.transform_norm.{0}",
    r"generator_lm_head\.bias": "head.decoder_bias",
}
_DISTILBERT = {
    r"embeddings\.word_embeddings\.weight": "embeddings.word.embedding",
    r"embeddings\.position_embeddings\.weight": "embeddings.position.embedding",
    r"embeddings\.LayerNorm\.(weight|bias)": "embeddings.norm.{0}",
    r"transformer\.layer\.(\d+)\.attention\.q_lin\.(weight|bias)": "layers.{0}.query.{1}",
    r"transformer\.layer\.(\d+)\.attention\.k_lin\.(weight|bias)": "layers.{0}.key.{1}",
    r"transformer\.layer\.(\d+)\.attention\.v_lin\.(weight|bias)": "layers.{0}.value.{1}",
    r"transformer\.layer\.(\d+)\.attention\.out_lin\.(weight|bias)": "layers.{0}.attn_out.{1}",
    r"transformer\.layer\.(\d+)\.sa_layer_norm\.(weight|bias)": "layers.{0}.attn_norm.{1}",
    r"transformer\.layer\.(\d+)\.ffn\.lin1\.(weight|bias)": "layers.{0}.ffn_in.{1}",
    r"transformer\.layer\.(\d+)\.ffn\.lin2\.(weight|bias)": "layers.{0}.ffn_out.{1}",
    r"transformer\.layer\.(\d+)\.output_layer_norm\.(weight|bias)": "layers.{0}.ffn_norm.{1}",
    r"pre_classifier\.(weight|bias)": "head.dense.{0}",
    r"classifier\.(weight|bias)": "head.out.{0}",
    r"qa_outputs\.(weight|bias)": "head.out.{0}",
    r"vocab_transform\.(weight|bias)": "head.transform.{0}",
    r"vocab_layer_norm\.(weight|bias)": "head.transform_norm.{0}",
    r"vocab_projector\.bias": "head.decoder_bias",
}
KEY_TABLES: dict[str, dict[str, str]] = {
    "bert": {**_BERT_LIKE, **_BERT_HEADS},
    "roberta": {**_BERT_LIKE, **_ROBERTA_ELECTRA_HEADS},
    "electra": {**_BERT_LIKE, **_ROBERTA_ELECTRA_HEADS},
    "distilbert": _DISTILBERT,
}
# Keys that carry no parameters of ours: buffers and tied decoders (the word embeddings).
_IGNORED = re.compile(r"(.*position_ids|.*decoder\.weight|.*decoder\.bias|vocab_projector\.weight"
                      r"|generator_lm_head\.weight)$")
_LEAF_NAMES = {"weight": "weight", "gamma": "weight", "beta": "bias", "bias": "bias"}


def _map_name(table: dict[str, str], name: str) -> str | None:
  for pattern, target in table.items():
    m = re.fullmatch(pattern, name)
    if m:
      path = target.format(*m.groups())
      # torch leaf names -> ours, decided by the module kind in the path.
      head, _, leaf = path.rpartition(".")
      if leaf in _LEAF_NAMES:
        kind = "norm" if "norm" in head.rsplit(".", 1)[-1] else "dense"
        leaf = {"weight": "scale" if kind == "norm" else "kernel", "bias": "bias"}[
            _LEAF_NAMES[leaf]]
        path = f"{head}.{leaf}"
      return path
  return None


def read_checkpoint(directory: str) -> dict[str, np.ndarray]:
  """Reads the weights in ``directory`` as ``{torch_name: float32 array}`` (torch layout)."""
  files = os.listdir(directory)
  try:
    if "model.safetensors" in files:
      return _read_safetensors([os.path.join(directory, "model.safetensors")])
    if "model.safetensors.index.json" in files:
      with open(os.path.join(directory, "model.safetensors.index.json")) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
      return _read_safetensors([os.path.join(directory, s) for s in shards])
    if "flax_model.msgpack" in files:
      return _read_msgpack(os.path.join(directory, "flax_model.msgpack"))
    if "pytorch_model.bin" in files:
      return _read_torch_bin(os.path.join(directory, "pytorch_model.bin"))
  except ModelLoadError:
    raise
  except Exception as e:  # corrupt or truncated files raise many different types
    raise ModelLoadError(
        f"the weights in {directory} are corrupt or truncated ({type(e).__name__}: {e}); "
        "download or save the checkpoint again.") from None
  raise ModelLoadError(
      f"no weights found in {directory}: expected model.safetensors (or a sharded "
      "model.safetensors.index.json), flax_model.msgpack or pytorch_model.bin.")


def _read_safetensors(paths: list[str]) -> dict[str, np.ndarray]:
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  out = {}
  for path in paths:
    if not os.path.exists(path):
      raise ModelLoadError(f"the shard {path} named by model.safetensors.index.json is missing; "
                           "download the checkpoint again.")
    with safe_open(path, framework="flax") as f:
      for k in f.keys():
        out[k] = np.asarray(f.get_tensor(k), dtype=np.float32)
  return out


def _read_msgpack(path: str) -> dict[str, np.ndarray]:
  from flax import serialization  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    tree = serialization.msgpack_restore(f.read())
  out = {}

  def walk(node: Any, prefix: str):
    for k, v in node.items():
      name = f"{prefix}{k}"
      if isinstance(v, dict):
        walk(v, name + ".")
        continue
      v = np.asarray(v, dtype=np.float32)
      if k == "kernel":
        out[name[:-len("kernel")] + "weight"] = v.T
      elif k in ("embedding", "scale"):
        out[name[:-len(k)] + "weight"] = v
      else:
        out[name] = v

  walk(tree, "")
  return out


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ModelLoadError(
        f"{path} is a PyTorch pickle and torch is not installed. Convert it once to "
        "safetensors on a machine with torch: `python -c \"from transformers import AutoModel; "
        "AutoModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)\"`, or "
        "`pip install torch` to read it directly.") from None
  state = torch.load(path, map_location="cpu", weights_only=True)
  return {k: v.float().numpy() for k, v in state.items()}


def to_params(config: EncoderConfig, weights: dict[str, np.ndarray], abstract: dict[str, Any],
              source: str) -> tuple[dict[str, Any], list[str]]:
  """Maps torch-named ``weights`` onto the encoder's pure-dict parameter tree.

  Args:
    config: the encoder's config.
    weights: ``{torch_name: array}`` from :func:`read_checkpoint`.
    abstract: the encoder's parameters as a nested pure dict of ``ShapeDtypeStruct``.
    source: a name for messages.
  Returns:
    ``(params, unused)``: the nested dict of arrays and the checkpoint keys we did not use.
  Raises:
    ModelLoadError: a parameter is missing or has the wrong shape.
  """
  table = KEY_TABLES[config.family]
  flat: dict[str, np.ndarray] = {}
  unused = []
  for name, value in weights.items():
    short = name
    for prefix in _BASE_PREFIXES:
      if short.startswith(prefix):
        short = short[len(prefix):]
        break
    path = _map_name(table, short)
    if path is None:
      if not _IGNORED.fullmatch(short):
        unused.append(name)
      continue
    if path.endswith(".kernel"):
      value = value.T  # torch [out, in] -> ours [in, out]
    flat[path] = value
  expected = flatten_tree(abstract)
  missing = sorted(p for p in expected if p not in flat)
  if missing:
    raise ModelLoadError(
        f"{source} lacks {len(missing)} parameter(s) a {config.family} model with a "
        f"{config.head} head needs: {', '.join(missing[:8])}"
        f"{' ...' if len(missing) > 8 else ''}. Is it a checkpoint of this family and head? "
        "Pass head='embedding' to load the encoder alone.")
  for path, spec in expected.items():
    if tuple(flat[path].shape) != tuple(spec.shape):
      raise ModelLoadError(f"{source}: parameter {path} has shape {flat[path].shape}, the "
                           f"config says {tuple(spec.shape)}; config.json and weights disagree.")
  unused += sorted(p for p in flat if p not in expected)
  # A base encoder checkpoint often carries a pooler that the "embedding" head does not use.
  noisy = [u for u in unused if not (config.head == "embedding" and u.startswith("head."))]
  if noisy:
    warnings.warn(f"{source}: {len(noisy)} checkpoint key(s) not used by the {config.head} "
                  f"model: {', '.join(noisy[:8])}{' ...' if len(noisy) > 8 else ''}",
                  stacklevel=3)
  return unflatten_tree({p: flat[p] for p in expected}, abstract), unused


def flatten_tree(tree: Mapping[Any, Any], prefix: str = "") -> dict[str, Any]:
  """A nested mapping as ``{"a.b.c": leaf}`` (keys joined with dots)."""
  out = {}
  for k, v in tree.items():
    name = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten_tree(v, name + "."))
    else:
      out[name] = v
  return out


def unflatten_tree(flat: Mapping[str, Any], like: Mapping[Any, Any], prefix: str = "") -> dict:
  """The inverse of :func:`flatten_tree`, nested like ``like`` (its keys, ``flat``'s leaves)."""
  out = {}
  for k, v in like.items():
    name = f"{prefix}{k}"
    out[k] = unflatten_tree(flat, v, name + ".") if isinstance(v, Mapping) else flat[name]
  return out
