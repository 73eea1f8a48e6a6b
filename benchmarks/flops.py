"""Model FLOPs of the GRPO step's parts, for the benchmarks (2 FLOPs per multiply-add).

Counted: the matmuls of every layer (q/k/v/o projections, the MLP), the attention score and value
products over the keys a token may see (causal: its own context, not the masked slots a kernel
may also compute), and the output head where logits are needed. Not counted: norms, rotary
embeddings, softmax, sampling, the optimiser (all linear in tokens or parameters, and small).
"""

from __future__ import annotations

from r1jax.model import ModelConfig


def layer_matmul_params(cfg: ModelConfig) -> int:
    d, n, k, h, f = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.mlp_dim
    return d * (n + 2 * k) * h + n * h * d + 3 * d * f


def forward_flops(
    cfg: ModelConfig, tokens: float, mean_context: float, head_tokens: float
) -> float:
    """Forward FLOPs of `tokens` tokens that see `mean_context` keys on average; the head runs on
    `head_tokens` of them."""
    per_token = 2 * cfg.n_layers * layer_matmul_params(cfg)
    attention = cfg.n_layers * 2 * 2 * mean_context * cfg.n_heads * cfg.head_dim
    return tokens * (per_token + attention) + head_tokens * 2 * cfg.d_model * cfg.vocab_size


def grpo_step_flops(cfg: ModelConfig, b: int, g: int, p: int, t: int) -> dict[str, float]:
    """{"sample": prefill + decode, "update": reference forward + policy forward and backward}.

    Sampler: the B prompts once (causal, mean context (P + 1) / 2, head on the last token), then
    N = B * G rows feed T - 1 tokens each (context P + 1 .. P + T - 1) with the head every step.
    Update (mu = 1, shared prompt): the same prompt pass and the N * (T - 1) completion tokens,
    head on N * T positions; forward + backward = 3 forwards, plus the reference forward.
    """
    n = b * g
    prompt = forward_flops(cfg, b * p, (p + 1) / 2, b)
    decode = forward_flops(cfg, n * (t - 1), p + t / 2, n * (t - 1))
    completion = forward_flops(cfg, n * (t - 1), p + t / 2, 0)
    head = n * t * 2 * cfg.d_model * cfg.vocab_size
    forward = prompt - b * 2 * cfg.d_model * cfg.vocab_size + completion + head
    return {"sample": prompt + decode, "update": 4 * forward}
