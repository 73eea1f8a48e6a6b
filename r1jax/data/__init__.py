"""Tasks and data: TFDS builders (array_record, no TensorFlow), the toy corpus, JSONL import,
prompt encoding and batching.

May import: tokenizers, text. Never rewards, eval, rl or stages.
"""
