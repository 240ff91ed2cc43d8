"""Gradient attributions, jaxplain vs Captum on the same weights: IG-50, gradient x input, SmoothGrad-10.

    python experiments/benchmarks/bench_gradients.py --data /work/shared/data/rotten_tomatoes_corpus_full.csv.bz2 [--n 512]

On ``--n`` Rotten Tomatoes critic snippets (fresh/rotten rows, ``text`` column) and the default
model (``jaxplain.models.default.default_model()``; when its adapter is missing, all-MiniLM-L6-v2
base weights with a seeded random two-class head, and the output says so), it times:

- jaxplain: the registered kernels jitted through ``jaxplain.api.compiled`` on length-bucketed
  batches (sorted by length, ``--batch`` examples, padded to ``jaxplain.models.BUCKETS``);
  compile time is reported apart and excluded from examples/s.
- Captum on a Hugging Face ``BertForSequenceClassification`` built from the very same weights
  (logit agreement printed): ``LayerIntegratedGradients`` on the word embeddings, 50 Gauss-Legendre
  steps, the ``[CLS] [PAD] ... [SEP]`` baseline, ``InputXGradient`` and
  ``NoiseTunnel(Saliency)`` on the embeddings, (a) one example at a time without padding, as
  transformers-interpret and ferret do, (b) batched like jaxplain, with ``internal_batch_size``
  tuned on the first batches.

It prints examples/s for each, the ratios, and the useful-FLOP utilisation: FLOPs of real
(non-padding) tokens only, forward plus the input-gradient backward (3x forward) per step or
sample, over wall time and over a matmul peak measured on the spot (a large ``jnp.dot``). Finally
it runs IG with ``--memory-steps`` (300) steps on one 512-token input with ``chunk_size`` in a
subprocess and prints its peak resident memory. ``--captum-n`` bounds how many examples the
slow Captum loops see (their examples/s is a rate, measured on that subset).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import jaxplain  # noqa: E402
from jaxplain.api import compiled  # noqa: E402
from jaxplain.contracts import Batch  # noqa: E402
from jaxplain.models import BUCKETS  # noqa: E402

METHODS = {  # name -> (jaxplain kernel, static hyper, passes of forward+backward per example)
    "ig50": ("integrated_gradients", (("steps", 50),), 50),
    "gxi": ("gradient_x_input", (), 1),
    "smoothgrad10": ("smoothgrad", (("base", "saliency"), ("norm", "l1"), ("samples", 10),
                                    ("stdev", 0.15)), 10),
}


def load_texts(path: str, n: int) -> list[str]:
  import pandas as pd  # pylint: disable=g-import-not-at-top
  df = pd.read_csv(path)
  df = df[df["category"].isin(["fresh", "rotten"])]
  texts = df["text"].dropna().astype(str).str.strip()
  texts = texts[texts.str.len() > 0].drop_duplicates()
  return texts.sample(n=min(n, len(texts)), random_state=0).tolist()


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


def forward_flops(config, n: int) -> float:
  """Matmul FLOPs of one forward pass over ``n`` real tokens (encoder + pooler + classifier)."""
  h, i, layers = config.hidden_size, config.intermediate_size, config.num_layers
  per_layer = 2 * n * (4 * h * h + 2 * h * i) + 2 * 2 * n * n * h
  return layers * per_layer + 2 * h * h + 2 * h * config.num_labels


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
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


def run_jaxplain(model, batches, name, hyper):
  fn = compiled(name, tuple(sorted(dict(hyper, **_ids(model)).items())), model.forward)
  key = jax.random.key(0)
  t0 = time.perf_counter()
  seen = set()
  for _, b in batches:  # compile every bucket shape once (excluded from the timing)
    if b.input_ids.shape not in seen:
      seen.add(b.input_ids.shape)
      jax.block_until_ready(fn(model.params, b, None, key))
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _, b in batches:
    jax.block_until_ready(fn(model.params, b, None, key))
  return time.perf_counter() - t0, compile_s, len(seen)


def _ids(model):
  tok = model.tokenizer
  ids = dict(pad_id=tok.pad_token_id, mask_id=tok.mask_token_id, unk_id=tok.unk_token_id)
  ids["special_ids"] = tuple(sorted(set(tok.all_special_ids) - set(ids.values())))
  return ids


class CaptumRunner:
  """Captum on the HF model: LIG on the word embeddings, InputXGradient, NoiseTunnel(Saliency)."""

  def __init__(self, torch_model, tokenizer):
    import torch  # pylint: disable=g-import-not-at-top
    from captum.attr import (InputXGradient, LayerIntegratedGradients, NoiseTunnel,  # pylint: disable=g-import-not-at-top
                             Saliency)
    self.torch, self.model = torch, torch_model
    self.pad = tokenizer.pad_token_id
    self.specials = set(tokenizer.all_special_ids) - {tokenizer.pad_token_id,
                                                      tokenizer.mask_token_id,
                                                      tokenizer.unk_token_id}
    table = torch_model.bert.embeddings.word_embeddings
    self.table = table
    f_ids = lambda i, m, t: torch_model(input_ids=i, attention_mask=m, token_type_ids=t).logits
    f_emb = lambda e, m, t: torch_model(inputs_embeds=e, attention_mask=m,
                                        token_type_ids=t).logits
    self.lig = LayerIntegratedGradients(f_ids, table)
    self.ixg = InputXGradient(f_emb)
    self.nt = NoiseTunnel(Saliency(f_emb))
    self.f_ids = f_ids

  def tensors(self, ids, mask, types):
    t = self.torch
    ids, mask, types = (t.tensor(np.asarray(a), dtype=t.long) for a in (ids, mask, types))
    keep = t.zeros_like(ids, dtype=t.bool)
    for s in self.specials:
      keep |= ids == s
    base = t.where(keep | (mask == 0), ids, t.full_like(ids, self.pad))
    with t.no_grad():
      target = self.f_ids(ids, mask, types).argmax(-1)
    return ids, mask, types, base, target

  def run(self, method, ids, mask, types, internal_batch_size=None):
    ids, mask, types, base, target = self.tensors(ids, mask, types)
    extra = (mask, types)
    if method == "ig50":
      return self.lig.attribute(ids, baselines=base, target=target, additional_forward_args=extra,
                                n_steps=50, internal_batch_size=internal_batch_size)
    emb = self.table(ids).detach()
    if method == "gxi":
      return self.ixg.attribute(emb, target=target, additional_forward_args=extra)
    return self.nt.attribute(emb, nt_type="smoothgrad", nt_samples=10, stdevs=0.15,
                             nt_samples_batch_size=internal_batch_size, target=target,
                             additional_forward_args=extra)


def time_captum(runner, method, batches, internal_batch_size=None):
  t0 = time.perf_counter()
  for b in batches:
    runner.run(method, *b, internal_batch_size=internal_batch_size)
  return time.perf_counter() - t0


def memory_child(steps: int, chunk: int) -> None:
  """Subprocess body: IG with ``steps`` on one 512-token input, chunked; prints JSON."""
  model, note = load_model()
  words = ("an utterly charming film that never once stoops to easy sentiment " * 80).split()
  batch = model.encode([" ".join(words)], max_length=512).device_part()
  assert batch.input_ids.shape == (1, 512), batch.input_ids.shape
  fn = compiled("integrated_gradients", tuple(sorted(dict(steps=steps, chunk_size=chunk,
                                                         **_ids(model)).items())), model.forward)
  t0 = time.perf_counter()
  scores = jax.block_until_ready(fn(model.params, batch, None, jax.random.key(0)))
  seconds = time.perf_counter() - t0
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB on Linux
  print(json.dumps(dict(peak_rss_gib=rss, seconds=seconds, finite=bool(np.isfinite(
      np.asarray(scores)).all()), model=note)))


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--n", type=int, default=512)
  p.add_argument("--batch", type=int, default=32, help="examples per jaxplain/Captum batch")
  p.add_argument("--captum-n", type=int, default=None,
                 help="examples the Captum loops time (default: all --n)")
  p.add_argument("--methods", default="ig50,gxi,smoothgrad10")
  p.add_argument("--memory-steps", type=int, default=300)
  p.add_argument("--memory-chunk", type=int, default=16)
  p.add_argument("--skip-memory", action="store_true")
  p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.memory_child:
    return memory_child(args.memory_steps, args.memory_chunk)

  import torch  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_default_matmul_precision", "float32")
  print(f"devices: jax {jax.devices()}, torch threads {torch.get_num_threads()}, "
        f"os.cpu_count {os.cpu_count()}")
  model, note = load_model()
  print(f"model: {note}")
  texts = load_texts(args.data, args.n)
  batches, lengths = bucketed_batches(model, texts, args.batch)
  print(f"examples: {len(texts)}; real tokens per example: mean {lengths.mean():.1f}, "
        f"max {lengths.max()}; {len(batches)} batches of <= {args.batch}, buckets "
        f"{sorted({b.input_ids.shape[1] for _, b in batches})} (from {BUCKETS})")

  torch_model = to_torch(model)
  check = batches[0][1]
  with torch.no_grad():
    theirs = torch_model(input_ids=torch.tensor(np.asarray(check.input_ids), dtype=torch.long),
                         attention_mask=torch.tensor(np.asarray(check.attention_mask)),
                         token_type_ids=torch.tensor(np.asarray(check.token_type_ids),
                                                     dtype=torch.long)).logits.numpy()
  ours = np.asarray(model.outputs(check).logits)
  print(f"same weights: max |logit jaxplain - logit torch| = {np.abs(ours - theirs).max():.2e}")

  peak = matmul_peak()
  print(f"matmul peak (2048^3 f32 jnp.dot, best of 5): {peak / 1e9:.1f} GFLOP/s")
  runner = CaptumRunner(torch_model, model.tokenizer)
  captum_n = min(args.captum_n or len(texts), len(texts))
  rng = np.random.default_rng(0)
  subset = np.sort(rng.choice(len(texts), captum_n, replace=False))
  singles = [(np.asarray([model.tokenizer(texts[j])["input_ids"]]),) for j in subset]
  singles = [(i, np.ones_like(i), np.zeros_like(i)) for (i,) in singles]
  sub_batches, _ = bucketed_batches(model, [texts[j] for j in subset], args.batch)
  sub_batches = [(b.input_ids, b.attention_mask, b.token_type_ids) for _, b in sub_batches]
  results = {}
  for method in args.methods.split(","):
    name, hyper, passes = METHODS[method]
    useful = sum(forward_flops(model.config, int(n)) for n in lengths) * 3 * passes
    useful_sub = sum(forward_flops(model.config, int(lengths[j])) for j in subset) * 3 * passes
    seconds, compile_s, shapes = run_jaxplain(model, batches, name, hyper)
    jx = len(texts) / seconds
    util = useful / seconds / peak
    print(f"\n[{method}] jaxplain: {jx:.2f} ex/s ({seconds:.1f} s for {len(texts)}; compile "
          f"{compile_s:.1f} s for {shapes} shapes); useful {useful / seconds / 1e9:.1f} GFLOP/s "
          f"= {100 * util:.1f}% of the matmul peak")
    # Captum batched: tune internal_batch_size on the first two batches.
    options = [None] if method == "gxi" else (
        [None, 4 * args.batch, 16 * args.batch] if method == "ig50" else [None, 2, 5])
    tuned = {}
    for o in options:
      tuned[o] = time_captum(runner, method, sub_batches[:2], o)
    best = min(tuned, key=tuned.get)
    print(f"[{method}] Captum internal_batch_size tuning on 2 batches: "
          + ", ".join(f"{k}: {v:.2f} s" for k, v in tuned.items()) + f" -> {best}")
    cb = time_captum(runner, method, sub_batches, best)
    cs = time_captum(runner, method, singles, None)
    cb_rate, cs_rate = captum_n / cb, captum_n / cs
    print(f"[{method}] Captum batched: {cb_rate:.2f} ex/s ({cb:.1f} s for {captum_n}); "
          f"useful {useful_sub / cb / 1e9:.1f} GFLOP/s = {100 * useful_sub / cb / peak:.1f}%")
    print(f"[{method}] Captum one at a time: {cs_rate:.2f} ex/s ({cs:.1f} s for {captum_n}); "
          f"useful {useful_sub / cs / 1e9:.1f} GFLOP/s = {100 * useful_sub / cs / peak:.1f}%")
    print(f"[{method}] jaxplain / Captum batched = {jx / cb_rate:.2f}x; jaxplain / Captum "
          f"one-at-a-time = {jx / cs_rate:.2f}x")
    results[method] = dict(jaxplain=jx, captum_batched=cb_rate, captum_single=cs_rate,
                           utilisation=util, compile_s=compile_s)

  if not args.skip_memory:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", "--memory-steps",
           str(args.memory_steps), "--memory-chunk", str(args.memory_chunk)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = (out.stdout.strip().splitlines() or [out.stderr[-500:]])[-1]
    print(f"\n[memory] IG-{args.memory_steps}, chunk_size={args.memory_chunk}, one 512-token "
          f"input, fresh process: {line}")
  print("\nsummary:", json.dumps(results))


if __name__ == "__main__":
  main()
