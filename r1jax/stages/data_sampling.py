"""What the data stages share: pick prompts, sample k completions each, publish the tokenizer.

Sampling is the evaluation harness's (eval/harness.py: one compiled sampler, fixed-size prompt
batches, the paper's temperature 0.6 and top-p 0.95 by default), so a data stage sees exactly the
completions an evaluation of the same model would.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from r1jax.eval import harness as evaluation
from r1jax.tokenizers import stop_ids


def eval_config(s: ml_collections.ConfigDict) -> evaluation.EvalConfig:
    return evaluation.EvalConfig(
        samples=s.samples,
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k,
        max_new_tokens=s.max_new_tokens,
        batch_prompts=s.batch_prompts,
        prompt_bucket=s.prompt_bucket,
        template=s.template,
    )


def pick(examples: Sequence[dict], n: int, seed: int) -> list[dict]:
    """n examples in a seeded order (all of them, shuffled, for n = 0 or n >= len)."""
    order = np.random.default_rng([seed, 104729]).permutation(len(examples))
    return [examples[int(i)] for i in order[: n or len(examples)]]


def sample(
    graphdef, params, tok, examples: Sequence[dict], s, mesh, rules, key: jax.Array
) -> tuple[list[list[str]], list[list[int]], list[list[bool]], float]:
    """(texts, token lengths, truncated) per [prompt][sample], and the seconds it took."""
    ecfg = eval_config(s)
    fn = evaluation.make_sample_fn(
        graphdef, ecfg, tok.eos_id, tok.pad_id, params, mesh, rules, stop_ids(tok)
    )
    t0 = time.perf_counter()
    texts, lengths, truncs = evaluation.sample_texts(
        fn, params, tok, examples, ecfg, key, desc="sampling"
    )
    return texts, lengths, truncs, time.perf_counter() - t0


def publish_tokenizer(source: str, workdir: str) -> None:
    """Copies the sampled model's tokenizer into the data set's workdir (distillation checks it)."""
    src, dst = os.path.join(source, "tokenizer.model"), os.path.join(workdir, "tokenizer.model")
    if jax.process_index() == 0 and os.path.exists(src):
        os.makedirs(workdir, exist_ok=True)
        shutil.copyfile(src, dst + ".tmp")
        os.replace(dst + ".tmp", dst)
