"""Throughput of the LRP kernels: AttnLRP vs IG-50, and Mask-LRP batched vs one at a time.

    python experiments/benchmarks/bench_lrp.py [--model PATH] [--batch 16] [--length 64]

Prints examples per second (compile excluded, median of ``--repeats`` timed calls) for
``attnlrp``, ``cp_lrp``, ``integrated_gradients`` (50 steps), ``gae`` and ``mask_lrp`` on a
batch of Rotten Tomatoes-like sentences padded to ``--length`` tokens, and Mask-LRP run on the
whole batch (vmapped relprop) vs a Python loop over single examples.
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxplain
from jaxplain.api import compiled
from jaxplain.contracts import Batch

SENTENCES = [
    "an utterly charming and hilarious film that reminded me why i love going to the movies",
    "the plot is thin , the dialogue is wooden and the whole thing drags on far too long",
    "a quiet , moving portrait of grief that never stoops to easy sentiment",
    "despite a strong cast , the film collapses under the weight of its own ambition",
]


def _batch(model, b, t):
  texts = [SENTENCES[i % len(SENTENCES)] for i in range(b)]
  enc = model.encode(texts, max_length=t)
  pad = t - enc.input_ids.shape[1]
  p = lambda x: jnp.asarray(np.pad(np.asarray(x), [(0, 0), (0, pad)]))
  return Batch(p(enc.input_ids), p(enc.attention_mask), p(enc.token_type_ids))


def _time(fn, args, repeats):
  jax.block_until_ready(fn(*args))  # compile + warm
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--model", default=None)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--length", type=int, default=64)
  p.add_argument("--repeats", type=int, default=3)
  args = p.parse_args()
  model = jaxplain.default_model() if args.model is None else jaxplain.load_model(args.model)
  batch = _batch(model, args.batch, args.length)
  target = jnp.zeros((args.batch,), jnp.int32)
  key = jax.random.key(0)
  mask = jnp.ones((model.config.num_layers, model.config.num_heads), jnp.float32)
  rows = {}
  for label, name, static, dyn in (
      ("attnlrp", "attnlrp", (), {}), ("cp_lrp", "cp_lrp", (), {}),
      ("ig-50", "integrated_gradients", (("steps", 50),), {}), ("gae", "gae", (), {}),
      ("mask_lrp (batched)", "mask_lrp", (), {"head_mask": mask})):
    fn = compiled(name, static, model.forward)
    sec = _time(lambda *a, fn=fn, dyn=dyn: fn(*a, **dyn), (model.params, batch, target, key),
                args.repeats)
    rows[label] = args.batch / sec
  one = compiled("mask_lrp", (), model.forward)
  singles = [jax.tree.map(lambda x, i=i: x[i:i + 1], batch) for i in range(args.batch)]

  def loop(params):
    return [one(params, s, target[:1], key, head_mask=mask) for s in singles]

  rows["mask_lrp (one at a time)"] = args.batch / _time(loop, (model.params,), args.repeats)
  device = jax.devices()[0]
  print(f"{model.name}, batch {args.batch} x {args.length} tokens, {device.platform} "
        f"({device.device_kind}), {jax.device_count()} device(s)")
  for label, eps in rows.items():
    print(f"  {label:26s} {eps:9.2f} examples/s")
  print(f"  attnlrp / ig-50 speed-up: {rows['attnlrp'] / rows['ig-50']:.1f}x; mask_lrp batched "
        f"/ one at a time: {rows['mask_lrp (batched)'] / rows['mask_lrp (one at a time)']:.1f}x")
  print(json.dumps({k: round(v, 3) for k, v in rows.items()}))


if __name__ == "__main__":
  main()
