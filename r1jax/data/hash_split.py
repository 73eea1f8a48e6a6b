"""A problem's split from a stable hash of its text, shared by every generated task family.

Why a hash and not a draw: a problem then lands on the same side for every seed, size and mix of
kinds, so a training set (the pretraining corpus, SFT or RL data drawn with other options) can never
hold a test problem. The same key always gives the same bucket on every machine and run.
"""

from __future__ import annotations

import hashlib


def side(key: str, test_percent: int) -> str:
    """'test' when the key's bucket (0..99, from sha256) is below `test_percent`, else 'train'."""
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < test_percent else "train"
