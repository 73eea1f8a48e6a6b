"""Text of model output and prompts, with no dependency on the rest of the package: the R1 tags,
answer extraction, reasoning text and the strict format check (`parsing`), the prompt templates and
the two toy languages. Rewards, data, tokenizers and evaluation all read text through this package.

May import: nothing in r1jax.
"""
