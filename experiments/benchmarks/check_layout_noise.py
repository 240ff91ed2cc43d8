"""How far a method's scores move with the layout of a call: each text alone vs in a batch.

    python experiments/benchmarks/check_layout_noise.py [--method gae] [--n 512] [--data PATH]

``jaxplain.attribute`` lays texts out as length-sorted calls padded to buckets (``pack=False``)
or packed rows (the default). Both give each text its own scores up to float rounding. This
script measures that rounding, per method, on the default model and ``--n`` Rotten Tomatoes
snippets (the seeded sample of ``bench_gradients.py``): for every text, the largest difference
between its scores in each layout and its scores from a call on that text alone (no padding),
divided by its largest absolute score alone. It prints the quantiles over the texts.

A well-conditioned method (gradient x input, IG) stays near float32 rounding, ~1e-6. A method
that amplifies rounding shows it in both layouts alike: then a large packed difference says
nothing against packing, only about the method.
"""

import argparse
import datetime
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

QUANTILES = (0.5, 0.9, 0.99, 1.0)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default="/work/shared/data/rotten_tomatoes_corpus_full.csv.bz2")
  p.add_argument("--n", type=int, default=512)
  p.add_argument("--method", default="gae")
  args = p.parse_args()

  import jaxplain  # pylint: disable=g-import-not-at-top
  from _common import load_model, load_texts  # pylint: disable=g-import-not-at-top

  model, label = load_model()
  texts = load_texts(args.data, args.n)
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  print(f"date {stamp} | {len(texts)} texts | method {args.method} | {label}")
  layouts = {"grouped": jaxplain.attribute(model, texts, args.method, pack=False),
             "packed": jaxplain.attribute(model, texts, args.method, pack=True)}
  t0 = time.perf_counter()
  moved = {k: [] for k in layouts}
  for i, text in enumerate(texts):
    alone = jaxplain.attribute(model, [text], args.method)
    n = alone.scores.shape[1]
    scale = max(float(np.abs(alone.scores[0]).max()), 1e-30)
    for k, a in layouts.items():
      assert a.target[i] == alone.target[0], (k, i)  # the same class explained
      moved[k].append(float(np.abs(a.scores[i, :n] - alone.scores[0]).max()) / scale)
  print(f"{len(texts)} single-text calls: {time.perf_counter() - t0:.0f} s")
  print("largest |layout - alone| / max |alone|, per text; quantiles over the texts:")
  print("layout    " + "".join(f"{'q' + format(q, 'g'):>11}" for q in QUANTILES))
  for k, values in moved.items():
    print(f"{k:<10}" + "".join(f"{v:>11.2e}" for v in np.quantile(values, QUANTILES)))


if __name__ == "__main__":
  main()
