"""IG-50 examples/s in float32 vs bfloat16 compute on BERT-sized inputs: the accelerator rows.

    python experiments/benchmarks/bench_ig_dtype.py [--config bert-base] [--tokens 128,512]
        [--batch 32] [--n 256] [--steps 50] [--chunk-size auto] [--rounds 3]

For each ``--tokens`` length it builds ``--n`` inputs of exactly that many real tokens
([CLS], random word pieces, [SEP]; seeded) and runs the library's ``integrated_gradients``
(``--steps`` Gauss-Legendre steps, pad baseline, ``chunk_size`` as given) through
``jaxplain.api.compiled`` in batches of ``--batch``, once with the encoder computing in float32
and once in bfloat16 (``EncoderConfig.dtype``: matmuls in bfloat16 with float32 parameters,
accumulation, softmax and LayerNorm). The two are compiled and run once per shape first
(excluded, ``bench_gradients.prepare_jaxplain``), then timed round by round, interleaved
(``bench_gradients.interleaved``), on whatever device JAX sees. Printed: the
device, examples/s per dtype, the bfloat16 speed-up, useful GFLOP/s (forward + input-gradient
backward matmul FLOPs of the real tokens, as ``bench_gradients.py`` counts them) against matmul
peaks measured on the spot in both dtypes, and how far bfloat16's scores are from float32's
(largest difference over the largest score, on the first two batches, and the mean |convergence
delta| of each there). Both dtypes explain float32's predicted class.

``--config bert-base`` (default) is BERT-base's shape (12 layers, hidden 768, 12 heads, FFN 3072)
randomly initialised: no pretrained BERT-base is available offline, and throughput does not
depend on the weights (the score comparison then shows rounding, not a trained model's
sensitivity). ``--config minilm`` uses the default model (MiniLM + LoRA sentiment adapter).
Meant for a GPU or TPU; on the 2-core CPU use small sizes (``--n 8 --tokens 32 --steps 8``).
"""

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from _common import load_model, matmul_peak  # noqa: E402
from bench_gradients import interleaved, prepare_jaxplain, useful_flops  # noqa: E402
from jaxplain.api import compiled  # noqa: E402
from jaxplain.attribution import ig_convergence_delta  # noqa: E402
from jaxplain.contracts import Batch  # noqa: E402
from jaxplain.models import EncoderConfig, init_encoder, model_from_params  # noqa: E402

CLS, SEP = 101, 102  # BERT's uncased vocabulary (MiniLM shares it)


def build(config_name: str):
  """``(float32 model, bfloat16 model, description)`` sharing one set of parameters."""
  if config_name == "minilm":
    model, note = load_model()
    cfg, params = model.config, model.params
  else:
    cfg = EncoderConfig(family="bert")  # BERT-base's shape: the dataclass defaults
    _, params = init_encoder(cfg, seed=0)
    note = "BERT-base shape (12 x 768, 12 heads, FFN 3072), randomly initialised"
  f32 = model_from_params(cfg.replace(dtype="float32"), params, name="float32")
  bf16 = model_from_params(cfg.replace(dtype="bfloat16"), params, name="bfloat16")
  return f32, bf16, note


def inputs(n: int, tokens: int, batch: int, vocab: int) -> list[Batch]:
  rng = np.random.default_rng(tokens)
  ids = rng.integers(1000, vocab, size=(n, tokens), dtype=np.int32)
  ids[:, 0], ids[:, -1] = CLS, SEP
  return [Batch(x, jnp.ones_like(x), jnp.zeros_like(x))
          for x in (jnp.asarray(ids[i:i + batch]) for i in range(0, n, batch))]


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--config", choices=("bert-base", "minilm"), default="bert-base")
  p.add_argument("--tokens", default="128,512", help="comma-separated input lengths")
  p.add_argument("--batch", type=int, default=32)
  p.add_argument("--n", type=int, default=256)
  p.add_argument("--steps", type=int, default=50)
  p.add_argument("--chunk-size", default="auto", help="'auto', 'none' or an integer")
  p.add_argument("--rounds", type=int, default=3, help="timed passes over the inputs")
  args = p.parse_args()
  choice = args.chunk_size.lower()
  chunk = "auto" if choice == "auto" else None if choice == "none" else int(choice)

  started = time.time()
  print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | jax {jax.__version__} | "
        f"devices {jax.devices()} | load average {os.getloadavg()[0]:.1f}")
  f32, bf16, note = build(args.config)
  print(f"model: {note}; IG-{args.steps} (gausslegendre, pad baseline, chunk_size={chunk!r}), "
        f"batches of {args.batch}, {args.n} inputs per length, {args.rounds} timed rounds")
  size = 2048 if jax.default_backend() == "cpu" else 4096
  peaks = {"float32": matmul_peak(size), "bfloat16": matmul_peak(size, dtype=jnp.bfloat16)}
  print("matmul peak on the spot: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s"
                                                 for k, v in peaks.items()))
  hyper = (("chunk_size", chunk), ("steps", args.steps))
  rows = []
  for tokens in (int(t) for t in args.tokens.split(",")):
    batches = inputs(args.n, tokens, args.batch, f32.config.vocab_size)
    # One target for both dtypes: float32's predicted class (a random head's two logits can be
    # close enough for bfloat16 to pick the other one).
    targets = [jnp.argmax(f32.outputs(b).logits, -1) for b in batches]
    pairs = list(enumerate(batches))
    runs = {}
    for model in (f32, bf16):
      fn = compiled("integrated_gradients", hyper, model.forward)
      calls, compile_s, _ = prepare_jaxplain(model, pairs, "integrated_gradients", hyper, fn=fn,
                                             targets=targets)
      runs[model.name] = (model, calls, compile_s)
    totals = interleaved({k: calls * args.rounds for k, (_, calls, _) in runs.items()}, settle=0)
    seconds = {k: wall for k, (wall, _) in totals.items()}
    scores, deltas = {}, {}
    for name, (model, calls, _) in runs.items():
      delta_fn = jax.jit(functools.partial(ig_convergence_delta, model.forward))
      out = [(b, tg, call()) for b, tg, call in zip(batches[:2], targets[:2], calls)]
      scores[name] = np.concatenate([np.asarray(o, np.float32) for _, _, o in out])
      deltas[name] = float(np.mean(np.abs(np.concatenate(
          [np.asarray(delta_fn(model.params, b, tg, o)) for b, tg, o in out]))))
    s32, s16 = scores["float32"], scores["bfloat16"]
    flops = useful_flops(f32.config, tokens) * args.steps * args.n * args.rounds
    for name, (_, _, compile_s) in runs.items():
      rate = args.n * args.rounds / seconds[name]
      rows.append((tokens, name, rate, flops / seconds[name], peaks[name], compile_s,
                   deltas[name]))
      print(f"[{tokens} tokens] {name}: {rate:.2f} ex/s ({seconds[name]:.1f} s; compile + "
            f"first run {compile_s:.1f} s); useful {flops / seconds[name] / 1e12:.2f} TFLOP/s "
            f"({100 * flops / seconds[name] / peaks[name]:.0f}% of its peak); mean |delta| "
            f"{deltas[name]:.2e}", flush=True)
    print(f"[{tokens} tokens] bfloat16 speed-up {seconds['float32'] / seconds['bfloat16']:.2f}x; "
          f"largest |score difference| {np.abs(s16 - s32).max() / np.abs(s32).max():.2%} of the "
          f"largest float32 score (first two batches)", flush=True)

  print("\n| tokens | compute dtype | IG examples/s | useful TFLOP/s | of its matmul peak | "
        "mean abs convergence delta |\n|---:|---|---:|---:|---:|---:|")
  for tokens, name, rate, fl, peak, _, delta in rows:
    print(f"| {tokens} | {name} | {rate:.2f} | {fl / 1e12:.2f} | {100 * fl / peak:.0f}% | "
          f"{delta:.2e} |")
  print(f"\nwall time {time.time() - started:.0f} s")


if __name__ == "__main__":
  main()
