"""Prompt templates: the R1-Zero template of the DeepSeek-R1 paper and a plain one.

A template turns a task's question into the prompt text; the completion continues right after it.
With "r1_zero" the model must open `<think>` itself, which is what the format reward checks.
"""

from __future__ import annotations

R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: {question} Assistant:"
)
PLAIN = "Question: {question}\nAnswer:"

TEMPLATES = {"r1_zero": R1_ZERO, "plain": PLAIN}


def render(template: str, question: str) -> str:
    """The prompt for `question` under the named template."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {sorted(TEMPLATES)}.")
    return TEMPLATES[template].format(question=question)
