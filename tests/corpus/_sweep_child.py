"""Runs one sweep in a fresh process (tests start it with their own XLA_FLAGS / process ids).

Usage: python _sweep_child.py CONFIG_JSON [--coordinator ADDR --num-processes N --process-id I]
[--pause-after-shard SECONDS]. CONFIG_JSON holds ``make_config`` keyword arguments.
"""

import argparse
import json
import sys
import time


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("config")
  parser.add_argument("--coordinator")
  parser.add_argument("--num-processes", type=int)
  parser.add_argument("--process-id", type=int)
  parser.add_argument("--pause-after-shard", type=float, default=0.0)
  args = parser.parse_args()
  from jaxplain import corpus  # pylint: disable=g-import-not-at-top
  if args.coordinator:
    corpus.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_default_matmul_precision", "float32")
  with open(args.config) as f:
    config = corpus.make_config(**json.load(f))

  def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
    if line.startswith("shard ") and args.pause_after_shard:
      time.sleep(args.pause_after_shard)  # lets a test kill us between shards

  summary = corpus.sweep(config, progress=False, log=log)
  print(json.dumps({"examples": summary.examples, "devices": summary.devices,
                    "shards_written": summary.shards_written,
                    "shards_skipped": summary.shards_skipped, "errors": summary.errors}))


if __name__ == "__main__":
  main()
