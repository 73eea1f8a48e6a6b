"""The evaluation harness: k sampled completions per problem, scored with the R1 protocol.

pass@1 is averaged over the k samples (the paper samples at temperature 0.6, top-p 0.95), cons@k is
the majority vote over normalised answers, pass@k uses the unbiased estimator, plus response length,
format compliance and the language-mixing rate. Sampling uses the jitted sampler; problems are
processed in fixed-size batches (the last one padded by repetition, its extra rows dropped), so one
compiled program serves a whole evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from r1jax.data import prompts as prompts_lib
from r1jax.eval import metrics as eval_metrics
from r1jax.parallel import rows as rows_lib
from r1jax.parallel import sharding
from r1jax.rewards.registry import Reward
from r1jax.sampling import sample as sampling
from r1jax.sampling.sampler import Sampler
from r1jax.text.parsing import extract_answer
from r1jax.train import metrics


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    samples: int = 8  # k
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 128
    batch_prompts: int = 16
    prompt_bucket: int = 16
    template: str = "r1_zero"
    pass_k: tuple[int, ...] = (1, 4, 8)


def sample_texts(
    sample_fn: Callable,
    params: Any,
    tokenizer: Any,
    examples: Sequence[dict],
    cfg: EvalConfig,
    key: jax.Array,
    desc: str = "",
) -> tuple[list[list[str]], list[list[int]], list[list[bool]]]:
    """(texts, lengths, truncated), each [problem][sample]; `desc`: a progress bar over the prompt
    batches under that name (data stages that sample for minutes)."""
    texts, lengths, truncs = [], [], []
    bp = cfg.batch_prompts
    bar = metrics.Progress(-(-len(examples) // bp), 0, ("prompts",), desc) if desc else None
    for start in range(0, len(examples), bp):
        chunk = list(examples[start : start + bp])
        real = len(chunk)
        chunk += [chunk[-1]] * (bp - real)
        ids, valid = prompts_lib.encode_batch(tokenizer, cfg.template, chunk, cfg.prompt_bucket)
        out = sample_fn(params, ids, valid, jax.random.fold_in(key, start))
        # every process decodes every text (cheap); scoring is split in `score`
        toks, mask, trunc = (
            rows_lib.gather_rows(x) for x in (out.tokens_NxT, out.mask_NxT, out.truncated_N)
        )
        for b in range(real):
            rows = range(b * cfg.samples, (b + 1) * cfg.samples)
            texts.append([tokenizer.decode(toks[r][mask[r]]) for r in rows])
            lengths.append([int(mask[r].sum()) for r in rows])
            truncs.append([bool(trunc[r]) for r in rows])
        if bar:
            bar.update({"prompts": start + real})
    if bar:
        bar.close()
    return texts, lengths, truncs


def score(
    texts: list[list[str]],
    lengths: list[list[int]],
    truncs: list[list[bool]],
    examples: Sequence[dict],
    accuracy: Reward,
    cfg: EvalConfig,
) -> tuple[dict, list[dict]]:
    """(summary metrics, per-problem records).

    Each process runs the accuracy reward (sympy, a sandbox) on its share of the problems only
    (`rows_lib.split_rows`); the verdicts are gathered, so every process returns the same summary.
    """
    start, stop = rows_lib.split_rows(len(examples))
    k = len(texts[0]) if texts else 0
    local = np.zeros((stop - start, k), np.int32)  # 1 = correct (the verdict, not the score)
    for i in range(start, stop):
        verdicts = accuracy(texts[i], [examples[i]] * len(texts[i]))
        local[i - start] = [v >= 1.0 for v in np.nan_to_num(verdicts, nan=0.0)]
    every = rows_lib.gather_split(local, len(examples))
    correct, records = [], []
    for samples, lens, ex, row in zip(texts, lengths, examples, every):
        ok = [bool(v) for v in row]
        answers = [extract_answer(s) for s in samples]
        vote = eval_metrics.majority_vote(answers)
        correct.append(ok)
        records.append(
            {
                "id": ex["id"],
                "question": ex["question"],
                "answer": ex["answer"],
                "correct": ok,
                "vote_correct": bool(vote is not None and ok[vote]),
                "lengths": lens,
                "samples": samples,
            }
        )
    flat = [s for group in texts for s in group]
    all_lengths = [n for group in lengths for n in group]
    summary = {
        "problems": len(examples),
        "samples_per_problem": cfg.samples,
        "pass@1": eval_metrics.pass1_over_samples(correct),
        f"cons@{cfg.samples}": float(np.mean([r["vote_correct"] for r in records])),
        "format_rate": eval_metrics.format_rate(flat),
        "readable_rate": eval_metrics.readable_rate(flat),
        "pattern_rate": eval_metrics.pattern_rate(flat),
        "language_mixing_rate": eval_metrics.language_mixing_rate(flat),
        "truncated_rate": float(np.mean([t for g in truncs for t in g])),
    }
    for k in cfg.pass_k:
        if 1 < k <= cfg.samples:
            summary[f"pass@{k}"] = eval_metrics.mean_pass_at_k(correct, k)
    summary.update({f"length_{k}": v for k, v in eval_metrics.length_stats(all_lengths).items()})
    return summary, records


def make_sample_fn(
    graphdef,
    cfg: EvalConfig,
    eos_id: int,
    pad_id: int,
    params: Any,
    mesh: Any = None,
    rules: Any = sharding.DEFAULT_RULES,
    stop_ids: tuple[int, ...] = (),
) -> Callable:
    """A compiled sampler for the evaluation settings, data-parallel over the mesh's batch axes."""
    scfg = sampling.SamplingConfig(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        eos_id=eos_id,
        pad_id=pad_id,
        stop_ids=tuple(stop_ids),
    )
    mesh = mesh if mesh is not None else sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    shardings = jax.tree.map(lambda x: x.sharding, params)
    sampler = Sampler(graphdef, shardings, mesh, rules)

    ways = sharding.data_parallel_size(mesh, rules)

    def sample_fn(p, ids_BxP, valid_BxP, key):
        if ids_BxP.shape[0] % ways:
            raise ValueError(
                f"eval batch_prompts={ids_BxP.shape[0]} cannot be split {ways} ways over the "
                f"mesh's batch axes; make it a multiple of {ways}."
            )
        if jax.process_count() > 1:  # every process encoded the whole chunk: global arrays
            ids_BxP, valid_BxP = (
                rows_lib.global_from_host(x, mesh, rules) for x in (ids_BxP, valid_BxP)
            )
        return sampler(p, ids_BxP, valid_BxP, key, cfg.samples, scfg)

    return sample_fn


def evaluate(
    graphdef,
    params,
    tokenizer,
    examples: Sequence[dict],
    accuracy: Reward,
    cfg: EvalConfig,
    key: jax.Array,
    sample_fn: Callable | None = None,
) -> tuple[dict, list[dict]]:
    """Samples and scores; pass `sample_fn` to reuse a compiled sampler across calls."""
    sample_fn = sample_fn or make_sample_fn(
        graphdef, cfg, tokenizer.eos_id, tokenizer.pad_id, params
    )
    texts, lengths, truncs = sample_texts(sample_fn, params, tokenizer, examples, cfg, key)
    return score(texts, lengths, truncs, examples, accuracy, cfg)


def write_report(workdir: str, name: str, summary: dict, records: list[dict], title: str) -> str:
    """<workdir>/<name>.json (summary + per-problem records) and <name>.md (a table)."""
    if jax.process_index() != 0:
        return ""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump({"summary": summary, "records": records}, f, indent=1)
    md = eval_metrics.markdown_table({title: summary})
    path = os.path.join(workdir, f"{name}.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(md + "\n")
    return path
