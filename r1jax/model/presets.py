"""Named model sizes for experiments (`config_base.model(preset)`)."""

from __future__ import annotations

from typing import Any

MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # ~1M parameters: the toy base model (pretrains in minutes on 2 CPU cores).
    "toy": dict(
        vocab_size=512, d_model=128, n_layers=4, n_heads=4, n_kv_heads=2, mlp_dim=384, max_len=512
    ),
    # the peers' shared tiny config (TRL / Tunix benchmarks).
    "peer_tiny": dict(
        vocab_size=512,
        d_model=256,
        n_layers=4,
        n_heads=4,
        n_kv_heads=2,
        mlp_dim=688,
        qkv_bias=True,
        max_len=512,
    ),
    # for the unit tests: compiles in a second or two.
    "test": dict(
        vocab_size=512, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, mlp_dim=64, max_len=512
    ),
    # the MFU benchmark's model.
    "bench_512": dict(
        vocab_size=512, d_model=512, n_layers=8, n_heads=8, n_kv_heads=8, mlp_dim=1536, max_len=512
    ),
}
