"""Tasks, the toy corpus, TFDS builders, JSONL import and batching."""
