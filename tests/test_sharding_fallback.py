"""A mesh that cannot divide a parameter dim (issue 12): logged once per case, or, with
`config.sharding_strict=True`, a ConfigError. On 8 simulated CPU devices, mesh (1, 2, 4).

The tiny model has 6 query heads and 2 kv heads, which tensor=4 does not divide (as Qwen2.5-0.5B's
14 heads on tensor=4), and mlp 64 / vocab 96 / d_model 32, which it does.
"""

import logging

import jax
import pytest

from r1jax import config_base, config_check
from r1jax.model import ModelConfig, api
from r1jax.model.hf_import import abstract_model
from r1jax.parallel import sharding
from r1jax.stages import common

CFG = ModelConfig(vocab_size=96, d_model=32, n_layers=2, n_heads=6, n_kv_heads=2, head_dim=8,
                  mlp_dim=64, max_len=16)  # fmt: skip
RULES = sharding.DEFAULT_RULES


@pytest.fixture(scope="module")
def mesh():
    return sharding.make_mesh((1, 2, 4))


@pytest.fixture(autouse=True)
def _fresh_state():
    sharding._LOGGED.clear()
    yield
    sharding.set_strict(False)


def _shardings(mesh, strict=None):
    _, shapes, names = abstract_model(CFG)
    return sharding.tree_shardings(shapes, names, mesh, RULES, strict=strict)


def test_fallback_is_logged_once_per_case(mesh, caplog):
    with caplog.at_level(logging.WARNING, logger="r1jax.parallel.sharding"):
        shard = _shardings(mesh)
        _shardings(mesh)  # the same cases again: no new lines
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # 'heads' of 6 and 'kv_heads' of 2 on tensor (4)
    heads = next(m for m in lines if "'heads' of size 6" in m)
    assert "mesh axes 'tensor' of size 4" in heads
    # q_proj [D, N, H] and o_proj [N, H, D] of both layers; three named, the count of the rest
    want = "replicated in 4 parameter(s): layers/0/attn/o_proj (6, 8, 32), layers/0/attn/q_proj"
    assert want in heads and heads.endswith("and 1 more")
    kv = next(m for m in lines if "'kv_heads' of size 2" in m)
    assert "layers/0/attn/k_proj (32, 2, 8)" in kv
    # what the lines say is what happened: those dims replicated, divisible ones sharded
    attn = shard["layers"][0]["attn"]
    assert attn["q_proj"].spec == jax.sharding.PartitionSpec("fsdp", None, None)
    assert shard["layers"][0]["mlp"]["up_proj"].spec == jax.sharding.PartitionSpec("fsdp", "tensor")


def test_no_log_when_the_mesh_divides(caplog):
    with caplog.at_level(logging.WARNING, logger="r1jax.parallel.sharding"):
        _shardings(sharding.make_mesh((2, 2, 2)))
    assert [r.getMessage() for r in caplog.records] == []


def test_strict_is_a_config_error(mesh):
    with pytest.raises(config_check.ConfigError) as err:
        _shardings(mesh, strict=True)
    msg = str(err.value)
    assert msg.startswith("config.sharding_strict=True: ")
    assert "'heads' of size 6 is not divisible by mesh axes 'tensor' of size 4" in msg
    assert "'kv_heads' of size 2 is not divisible by mesh axes 'tensor' of size 4" in msg
    sharding.set_strict(True)  # the process-wide setting, as stage runners set it
    with pytest.raises(config_check.ConfigError, match="set config.sharding_strict=False"):
        api.create(CFG, 0, mesh, RULES)
    _shardings(sharding.make_mesh((2, 2, 2)))  # a dividing mesh is fine in strict mode


def test_stage_setup_passes_the_key_through():
    config = config_base.common("pretrain")
    assert config.sharding_strict is False
    config.sharding_strict = True
    common.setup(config, config_base.common("pretrain"))
    assert sharding.is_strict()
    config.sharding_strict = False
    common.setup(config, config_base.common("pretrain"))
    assert not sharding.is_strict()
