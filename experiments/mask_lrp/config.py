"""Settings of the Mask-LRP reproduction (see results/table.md for the run that was made)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  data_dir: str = "../shared/data"        # rotten_tomatoes_corpus_full.csv.bz2, pang_lee_...
  model: str | None = None                # None: jaxplain.default_model()
  head: str | None = None                 # head override for --model (smoke runs on a base model)
  split_seed: int | None = None           # movie split; None: the default model's (adapter.json)
  sample_seed: int = 0
  head_masks: str | None = None           # a head_masks.json from `jaxplain heads` (else computed)
  head_texts: int = 400                   # train + validation snippets for the head statistics
  rt_examples: int = 300                  # RT test snippets with T >= 20 (sampled)
  rt_length: int = 48                     # RT padded shape (95% of T >= 20; longer dropped)
  rt_minutes: float = 17.0                # wall budget for RT, compiles included
  review_examples: int = 100              # Pang & Lee reviews (long inputs)
  review_length: int = 256                # reviews truncated to this many tokens
  review_minutes: float = 10.0            # wall budget for the reviews, compiles included
  batch_size: int = 16
  review_batch_size: int = 4
  ig_steps: int = 50
  ig_chunk: int = 10                      # IG steps per vmapped chunk (memory)
  review_ig: bool = True                  # run IG on the reviews too (its cost dominates)
  min_length: int = 20                    # Mask-LRP: skip T < 20
  bootstrap: int = 1000
  only: str | None = None                 # comma-separated method labels (smoke runs)


def get_config(**overrides) -> Config:
  return dataclasses.replace(Config(), **overrides)
