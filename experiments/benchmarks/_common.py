"""Shared by the benchmark scripts: the model (default, else a labelled fallback), the same weights
in PyTorch, the Rotten Tomatoes sample, length-bucketed batches, the matmul peak, and a swapped
activation function for A/B runs."""

import contextlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain


def load_texts(path: str, n: int) -> list[str]:
  import pandas as pd  # pylint: disable=g-import-not-at-top
  df = pd.read_csv(path)
  df = df[df["category"].isin(["fresh", "rotten"])]
  texts = df["text"].dropna().astype(str).str.strip()
  texts = texts[texts.str.len() > 0].drop_duplicates()
  return texts.sample(n=min(n, len(texts)), random_state=0).tolist()


@contextlib.contextmanager
def swapped_activation(name: str, fn):
  """``jaxplain.models.rules.ACTIVATION_FNS[name] = fn`` inside the block, restored after.

  JAX caches traces below ``jit`` (the body of IG's chunk loop among them) without seeing the
  swap, so the caches are cleared on entry and on exit: otherwise a program traced inside could
  reuse one traced before, and one traced after could reuse the swapped one.
  """
  from jaxplain.models import rules  # pylint: disable=g-import-not-at-top
  saved = rules.ACTIVATION_FNS[name]
  rules.ACTIVATION_FNS[name] = fn
  jax.clear_caches()
  try:
    yield
  finally:
    rules.ACTIVATION_FNS[name] = saved
    jax.clear_caches()


def load_model():
  from jaxplain.models import default as default_lib  # pylint: disable=g-import-not-at-top
  try:
    return default_lib.default_model(), "default model (MiniLM + LoRA sentiment adapter)"
  except jaxplain.ModelLoadError as e:
    config, pure, tok = default_lib.load_base(num_labels=2, seed=0)
    model = default_lib._to_model(config, pure, tok, ("negative", "positive"),  # pylint: disable=protected-access
                                  name="MiniLM base + seeded random head")
    return model, (f"FALLBACK: default_model() unavailable ({str(e)[:80]}...); using "
                   "all-MiniLM-L6-v2 base weights + a seeded random 2-class head")


def to_torch(model):
  """The same weights as a Hugging Face ``BertForSequenceClassification`` (eval, float32)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  c = model.config
  hf = transformers.BertConfig(
      vocab_size=c.vocab_size, hidden_size=c.hidden_size, num_hidden_layers=c.num_layers,
      num_attention_heads=c.num_heads, intermediate_size=c.intermediate_size,
      max_position_embeddings=c.max_positions, type_vocab_size=c.type_vocab_size,
      layer_norm_eps=c.layer_norm_eps, num_labels=c.num_labels, hidden_act="gelu",
      attn_implementation="sdpa")
  torch_model = transformers.BertForSequenceClassification(hf).eval()
  p = jax.tree.map(np.asarray, nnx.to_pure_dict(model.params))
  sd = {}
  lin = lambda d: (torch.tensor(d["kernel"].T.copy()), torch.tensor(d["bias"]))
  norm = lambda d: (torch.tensor(d["scale"]), torch.tensor(d["bias"]))
  e = p["embeddings"]
  sd["bert.embeddings.word_embeddings.weight"] = torch.tensor(e["word"]["embedding"])
  sd["bert.embeddings.position_embeddings.weight"] = torch.tensor(e["position"]["embedding"])
  sd["bert.embeddings.token_type_embeddings.weight"] = torch.tensor(e["token_type"]["embedding"])
  sd["bert.embeddings.LayerNorm.weight"], sd["bert.embeddings.LayerNorm.bias"] = norm(e["norm"])
  names = {"query": "attention.self.query", "key": "attention.self.key",
           "value": "attention.self.value", "attn_out": "attention.output.dense",
           "attn_norm": "attention.output.LayerNorm", "ffn_in": "intermediate.dense",
           "ffn_out": "output.dense", "ffn_norm": "output.LayerNorm"}
  for i in range(c.num_layers):
    layer = p["layers"][i]  # nnx.List -> a dict keyed by int
    for ours, theirs in names.items():
      w, b = (norm if ours.endswith("norm") else lin)(layer[ours])
      sd[f"bert.encoder.layer.{i}.{theirs}.weight"], sd[f"bert.encoder.layer.{i}.{theirs}.bias"] = w, b
  sd["bert.pooler.dense.weight"], sd["bert.pooler.dense.bias"] = lin(p["head"]["pooler"])
  sd["classifier.weight"], sd["classifier.bias"] = lin(p["head"]["out"])
  missing, unexpected = torch_model.load_state_dict(sd, strict=False)
  missing = [k for k in missing if "position_ids" not in k]
  assert not missing and not unexpected, (missing, unexpected)
  return torch_model


def matmul_peak(size: int = 2048, repeats: int = 5, dtype=jnp.float32) -> float:
  """FLOP/s of a jitted ``size^3`` matmul in ``dtype``, best of ``repeats`` (after a warm-up)."""
  a = jax.random.normal(jax.random.key(0), (size, size), dtype)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * size ** 3 / best


def bucketed_batches(model, texts, batch_size):
  """Sorted by length, ``batch_size`` per batch, padded to a bucket: ``[(indices, Batch)]``."""
  lengths = [len(model.tokenizer(t)["input_ids"]) for t in texts]
  order = np.argsort(lengths, kind="stable")
  out = []
  for s in range(0, len(order), batch_size):
    idx = order[s:s + batch_size]
    out.append((idx, model.encode([texts[j] for j in idx], max_length=512).device_part()))
  return out, np.asarray(lengths)
