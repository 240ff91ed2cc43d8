"""Where Chefer's relprop amplifies rounding: its residual rule, layer by layer, two paddings.

    python experiments/benchmarks/trace_relprop_residuals.py [--index 370] [--pad 64]

Runs the Chefer relprop (as ``gae`` does) for one Rotten Tomatoes snippet of the seeded
512-snippet sample (``--index``) on the default model, once padded to its own length and once
to ``--pad`` tokens. Padding changes nothing but float rounding (attention gives padding
exactly 0). For every residual addition ``z = a + b`` it prints, in both runs, the sums of the
z-rule's shares ``Σ R_a``, ``Σ R_b`` (before the rule rescales them to ``|Σ R_a| : |Σ R_b|``)
and of the incoming ``Σ R`` and ``Σ |R|``, and for every layer the largest relative difference
of the relevance leaving it. See ``results/check_layout_noise.md``.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--index", type=int, default=370, help="which of the 512 snippets")
  p.add_argument("--pad", type=int, default=64)
  args = p.parse_args()

  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  import jaxplain  # pylint: disable=g-import-not-at-top
  from jaxplain.attribution import _relprop  # pylint: disable=g-import-not-at-top
  from _common import load_model, load_texts  # pylint: disable=g-import-not-at-top

  model, label = load_model()
  text = load_texts(args.data, 512)[args.index]
  own = model.encode([text])
  n = int(own.attention_mask.sum())
  print(f"{label} | snippet {args.index}, {n} tokens: {text!r}")
  cfg, params = model.config, nnx.to_pure_dict(model.params)
  target = int(np.asarray(model(own)).argmax())

  def padded(t):
    pad = lambda x: np.pad(np.asarray(x)[:, :n], [(0, 0), (0, t - n)])
    return jaxplain.Batch(pad(own.input_ids), pad(own.attention_mask), pad(own.token_type_ids))

  sums, leaving = {}, {}
  real_add = _relprop.relprop_add
  for t in (n, args.pad):
    log = sums.setdefault(t, [])

    def traced(a, b, r, token_axis=0, slots=None, log=log):
      s = _relprop.sdiv(r, a + b)
      log.append([float(x) for x in ((a * s).sum(), (b * s).sum(), r.sum(), jnp.abs(r).sum())])
      return real_add(a, b, r, token_axis, slots)

    _relprop.relprop_add = traced
    try:
      batch = padded(t)
      hidden = model.outputs(batch).hidden[:, 0]
      mask = jnp.asarray(batch.attention_mask[0])
      bias = jnp.where(mask > 0, 0.0, jnp.finfo(jnp.float32).min).astype(jnp.float32)
      r = _relprop.head_relprop(params["head"], cfg.family, hidden[-1],
                                jax.nn.one_hot(target, len(model.labels)))
      for i in reversed(range(cfg.num_layers)):
        cache = _relprop.layer_forward(params["layers"][i], hidden[i], bias, cfg.num_heads,
                                       cfg.layer_norm_eps, cfg.activation)
        r, _ = _relprop.layer_relprop(params["layers"][i], cache, r, jnp.ones(cfg.num_heads),
                                      True)
        leaving.setdefault(t, []).append(np.asarray(r[:n]))
    finally:
      _relprop.relprop_add = real_add

  names = ("feed-forward + its input", "attention out + layer input", "scores + mask bias")
  print(f"per residual add: Σ R_a, Σ R_b, Σ R, Σ |R| with no padding | padded to {args.pad}")
  for k, (x, y) in enumerate(zip(sums[n], sums[args.pad])):
    layer = cfg.num_layers - 1 - k // 3
    print(f"layer {layer} {names[k % 3]:<28}" + " ".join(f"{v:+.3e}" for v in x) + "  |  "
          + " ".join(f"{v:+.3e}" for v in y))
    if k % 3 == 2:
      a, b = leaving[n][k // 3], leaving[args.pad][k // 3]
      print(f"layer {layer} relevance leaving it: max |difference| / max |R| = "
            f"{np.abs(a - b).max() / np.abs(a).max():.2e}")


if __name__ == "__main__":
  main()
