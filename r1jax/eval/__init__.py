"""Evaluation: the R1 protocol harness (pass@1 over k samples, cons@k, pass@k), its metrics as
pure functions, and the report over seeds.

May import: sampling, rewards, data, train, model, tokenizers, text, parallel. Never rl or stages.
"""
