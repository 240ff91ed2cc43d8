"""Settings of the Mask-LRP reproduction (see README.md)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Config:
  data_dir: str = "../shared/data"        # rotten_tomatoes_corpus_full.csv.bz2, pang_lee_...
  model: str | None = None                # None: jaxplain.default_model()
  head: str | None = None                 # head override for --model (smoke runs on a base model)
  split_seed: int = 0                     # the default model's movie split (finetune_default.py)
  sample_seed: int = 0
  head_texts: int = 400                   # train + validation snippets for the head statistics
  rt_examples: int = 96                   # RT test snippets with T >= 20 (sampled)
  rt_length: int = 64                     # one padded shape for RT (longer snippets dropped)
  review_examples: int = 16               # Pang & Lee reviews (long inputs)
  review_length: int = 256                # reviews truncated to this many tokens
  batch_size: int = 16
  ig_steps: int = 50
  min_length: int = 20                    # Mask-LRP: skip T < 20
  bootstrap: int = 1000


def get_config(**overrides) -> Config:
  return dataclasses.replace(Config(), **overrides)
