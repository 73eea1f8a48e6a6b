"""Qwen2 / Llama import and export against Hugging Face transformers (CPU, float32).

Each tiny model is built by transformers from a config, its weights (biases and norms included)
re-drawn at a scale that makes logits O(1), and written with `save_pretrained`. The tests then show:
r1jax logits == transformers logits on a left-padded batch; import -> export -> import is exact and
transformers reads the export; an 8-device (1, 2, 4) mesh gives one device's logits with real shards;
malformed checkpoints fail with an error naming the tensor; greedy sampling matches `generate`.
"""

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the `hf` extra (pip install -e '.[hf]') is not installed"
)
transformers = pytest.importorskip("transformers", reason="the `hf` extra is not installed")
safetensors_numpy = pytest.importorskip(
    "safetensors.numpy", reason="the `hf` extra is not installed"
)

from r1jax.model import api, hf  # noqa: E402
from r1jax.model.transformer import rope_inv_freq  # noqa: E402
from r1jax.parallel import sharding  # noqa: E402

RULES = sharding.DEFAULT_RULES
TOL = dict(rtol=1e-4, atol=1e-4)  # float32 on both sides; observed differences are ~1e-6
SCALING = {
    "rope_type": "llama3",
    "factor": 4.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,  # short, so that the scaling matters at 12 positions
}
COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=64, max_position_embeddings=128)
# name -> (config class, kwargs, save_pretrained max_shard_size)
MODELS = {
    "qwen2_gqa2": ("Qwen2Config", dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6), "50GB"),
    "qwen2_mha_tied": ("Qwen2Config", dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True), "20KB"),
    "llama_gqa4_scaled": ("LlamaConfig", dict(num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, head_dim=8, rope_theta=10000.0, rope_scaling=SCALING, rms_norm_eps=1e-5), "20KB"),
    "llama_mqa_tied": ("LlamaConfig", dict(num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=1, head_dim=16, tie_word_embeddings=True), "50GB"),
}  # fmt: skip


def _randomise(model, seed: int) -> None:
    """Re-draws every weight so that biases and norm scales are non-trivial and logits are O(1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.5 * noise)
            else:
                p.copy_(noise / max(p.shape[-1], 1) ** 0.5)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """name -> folder written by transformers' save_pretrained (built lazily, once per module)."""
    root, built = tmp_path_factory.mktemp("hf"), {}

    def get(name: str) -> str:
        if name not in built:
            cls_name, kw, shard = MODELS[name]
            cfg = getattr(transformers, cls_name)(**COMMON, **kw, bos_token_id=1, eos_token_id=2)
            model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
            _randomise(model, seed=len(built))
            built[name] = str(root / name)
            model.save_pretrained(built[name], max_shard_size=shard)
        return built[name]

    return get


def _batch(vocab: int, b: int = 4, t: int = 12, seed: int = 0):
    """Left-padded tokens and validity: row i has 3*i pads (row 0 full)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, vocab, (b, t)).astype(np.int32)
    valid = np.arange(t)[None, :] >= 3 * np.arange(b)[:, None]
    return np.where(valid, tokens, 0).astype(np.int32), valid


def _hf_logits(folder: str, tokens, valid) -> np.ndarray:
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    mask = torch.tensor(valid.astype(np.int64))
    pos = torch.clamp(mask.cumsum(-1) - 1, min=0)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(tokens.astype(np.int64)), attention_mask=mask, position_ids=pos
        )
    return out.logits.numpy()


def _r1_logits(graphdef, params, tokens, valid) -> np.ndarray:
    logits, _ = jax.jit(api.apply)(graphdef, params, jnp.asarray(tokens), jnp.asarray(valid))
    return np.asarray(logits)


@pytest.mark.parametrize("name", list(MODELS))
def test_logits_match_transformers(name, hf_dirs, one_device_mesh):
    folder = hf_dirs(name)
    graphdef, params, cfg = hf.load_hf(folder, one_device_mesh, RULES)
    assert cfg.tie_embeddings == MODELS[name][1].get("tie_word_embeddings", False)
    tokens, valid = _batch(cfg.vocab_size)
    want = _hf_logits(folder, tokens, valid)
    got = _r1_logits(graphdef, params, tokens, valid)
    assert np.abs(want[valid]).max() > 1.0  # logits are O(1), so TOL is a tight bound
    np.testing.assert_allclose(got[valid], want[valid], **TOL)


def test_rope_scaling_matches_and_matters(hf_dirs, one_device_mesh):
    """r1jax's llama3 inverse frequencies equal transformers' buffer, and dropping the scaling would
    move the logits far outside TOL (so the logits test above does check the scaling)."""
    folder = hf_dirs("llama_gqa4_scaled")
    graphdef, params, cfg = hf.load_hf(folder, one_device_mesh, RULES)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    want = model.model.rotary_emb.inv_freq.numpy()
    np.testing.assert_allclose(np.asarray(rope_inv_freq(cfg)), want, rtol=1e-6)
    unscaled = dataclasses.replace(cfg, rope_scaling=None)
    assert np.abs(np.asarray(rope_inv_freq(unscaled)) / want - 1).max() > 1.0
    graphdef_unscaled = hf.abstract_model(unscaled)[0]
    tokens, valid = _batch(cfg.vocab_size)
    got = _r1_logits(graphdef, params, tokens, valid)
    moved = _r1_logits(graphdef_unscaled, params, tokens, valid)
    assert np.abs(got - moved)[valid].max() > 100 * TOL["atol"]


@pytest.mark.parametrize("name", ["qwen2_mha_tied", "llama_gqa4_scaled"])
def test_export_round_trip(name, hf_dirs, one_device_mesh, tmp_path):
    folder = hf_dirs(name)
    graphdef, params, cfg = hf.load_hf(folder, one_device_mesh, RULES)
    out = str(tmp_path / "export")
    hf.save_hf(out, params, cfg, tokenizer_dir=folder, max_shard_bytes=30_000)
    files = hf.weight_map(out)
    assert len(set(files.values())) > 1 and os.path.exists(
        os.path.join(out, "model.safetensors.index.json")
    )
    # 1. the exported tensors are bit-identical to the original checkpoint's
    orig = hf.weight_map(folder)
    assert sorted(files) == sorted(orig)
    for tname in orig:
        a = safetensors_numpy.load_file(orig[tname])[tname]
        b = safetensors_numpy.load_file(files[tname])[tname]
        assert a.dtype == b.dtype and np.array_equal(a, b), tname
    # 2. import of the export is exact
    _, params2, cfg2 = hf.load_hf(out, one_device_mesh, RULES)
    assert cfg2 == cfg
    jax.tree.map(
        lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), params, params2
    )
    # 3. transformers reads the export and gives the original model's logits exactly
    tokens, valid = _batch(cfg.vocab_size, seed=1)
    np.testing.assert_array_equal(_hf_logits(out, tokens, valid), _hf_logits(folder, tokens, valid))
    assert json.load(open(os.path.join(out, "config.json")))["eos_token_id"] == 2


def test_sharded_load_matches_one_device(hf_dirs, one_device_mesh):
    folder = hf_dirs("llama_gqa4_scaled")
    mesh = sharding.make_mesh((1, 2, 4))
    graphdef, params, cfg = hf.load_hf(folder, mesh, RULES)
    q = params["layers"][0]["attn"]["q_proj"]  # [D=32, N=8, H=8]: embed on fsdp, heads on tensor
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)
    assert {s.data.shape for s in q.addressable_shards} == {(16, 2, 8)}
    assert params["embed"].addressable_shards[0].data.shape == (24, 16)  # [V=96, D=32] / (4, 2)
    tokens, valid = _batch(cfg.vocab_size)
    got = _r1_logits(graphdef, params, tokens, valid)
    g1, p1, _ = hf.load_hf(folder, one_device_mesh, RULES)
    np.testing.assert_allclose(
        got[valid], _r1_logits(g1, p1, tokens, valid)[valid], rtol=1e-5, atol=1e-5
    )


def test_bfloat16_params(hf_dirs, one_device_mesh):
    folder = hf_dirs("qwen2_gqa2")
    _, params, cfg = hf.load_hf(
        folder, one_device_mesh, RULES, dtype="bfloat16", param_dtype="bfloat16"
    )
    assert cfg.weight_dtype == jnp.bfloat16 and params["embed"].dtype == jnp.bfloat16
    w = safetensors_numpy.load_file(hf.weight_map(folder)["model.embed_tokens.weight"])
    want = w["model.embed_tokens.weight"].astype(jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(params["embed"]), want)


def _rewrite(folder: str, dst: str, drop=(), add=None, config=None) -> str:
    """A single-file copy of `folder` with tensors dropped/added or config.json entries changed."""
    shutil.copytree(folder, dst)
    tensors = {}
    for path in sorted(set(hf.weight_map(folder).values())):
        tensors.update(safetensors_numpy.load_file(path))
        os.remove(os.path.join(dst, os.path.basename(path)))
    if os.path.exists(os.path.join(dst, "model.safetensors.index.json")):
        os.remove(os.path.join(dst, "model.safetensors.index.json"))
    tensors = {k: v for k, v in tensors.items() if k not in drop} | (add or {})
    safetensors_numpy.save_file(
        tensors, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"}
    )
    cfg = hf.read_config(folder) | (config or {})
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"))
    return dst


def test_bad_checkpoints_name_the_tensor(hf_dirs, one_device_mesh, tmp_path):
    folder = hf_dirs("qwen2_gqa2")
    load = lambda d: hf.load_hf(d, one_device_mesh, RULES)
    bad = _rewrite(folder, str(tmp_path / "missing"), drop=["model.layers.1.mlp.up_proj.weight"])
    with pytest.raises(ValueError, match=r"lacks tensor 'model\.layers\.1\.mlp\.up_proj\.weight'"):
        load(bad)
    extra = {"model.layers.0.self_attn.o_proj.bias": np.zeros(32, np.float32)}
    bad = _rewrite(folder, str(tmp_path / "extra"), add=extra)
    with pytest.raises(
        ValueError, match=r"unexpected tensor 'model\.layers\.0\.self_attn\.o_proj\.bias'"
    ):
        load(bad)
    bad = _rewrite(folder, str(tmp_path / "shape"), config={"intermediate_size": 48})
    with pytest.raises(
        ValueError, match=r"'model\.layers\.0\.mlp\.gate_proj\.weight'.*\(64, 32\).*\(48, 32\)"
    ):
        load(bad)
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        hf.config_from_hf({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
    with pytest.raises(ValueError, match="'yarn'"):
        hf.config_from_hf(
            hf.read_config(folder) | {"rope_parameters": {"rope_type": "yarn", "factor": 4.0}}
        )
    with pytest.raises(ValueError, match="attention_bias"):
        hf.config_from_hf(hf.read_config(hf_dirs("llama_mqa_tied")) | {"attention_bias": True})


def test_real_model_configs():
    """Published configs (values copied from Qwen2.5-0.5B-Instruct and Llama-3.2-1B) convert and round trip."""
    qwen = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "rope_scaling": None, "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32768, "hidden_act": "silu"}  # fmt: skip
    llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 128256, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False, "hidden_act": "silu"}  # fmt: skip
    q = hf.config_from_hf(qwen)
    assert (q.head_dim, q.qkv_bias, q.tie_embeddings, q.rope_scaling) == (64, True, True, None)
    assert abs(q.num_params() - 494_032_768) < 1  # the published 0.49B
    ll = hf.config_from_hf(llama)
    assert ll.rope_scaling.factor == 32.0 and ll.rope_scaling.original_max_position == 8192
    assert (ll.qkv_bias, ll.norm_eps, ll.rope_theta) == (False, 1e-5, 500000.0)
    for c in (q, ll):
        assert hf.config_from_hf(hf.config_to_hf(c)) == c
        assert hf.config_from_hf(json.loads(json.dumps(hf.config_to_hf(c)))) == c


@pytest.mark.parametrize("name", ["qwen2_gqa2", "llama_gqa4_scaled"])
def test_greedy_sampling_matches_generate(name, hf_dirs, one_device_mesh):
    """r1jax's sampler (greedy) emits transformers' `generate` tokens, EOS stop and padding included."""
    from r1jax.sampling import sample as sampling

    folder = hf_dirs(name)
    graphdef, params, cfg = hf.load_hf(folder, one_device_mesh, RULES)
    tokens, valid = _batch(cfg.vocab_size, b=3, t=8, seed=2)
    n_new, p = 16, tokens.shape[1]
    model = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager"
    ).eval()

    def generate(eos: int) -> tuple[np.ndarray, np.ndarray]:
        out = model.generate(
            input_ids=torch.tensor(tokens.astype(np.int64)),
            attention_mask=torch.tensor(valid.astype(np.int64)),
            do_sample=False,
            max_new_tokens=n_new,
            eos_token_id=eos,
            pad_token_id=0,
            output_scores=True,
            return_dict_in_generate=True,
        )
        seq = out.sequences[:, p:].numpy()
        seq = np.pad(seq, ((0, 0), (0, n_new - seq.shape[1])), constant_values=0)
        return seq, torch.stack(out.scores, 1).numpy()

    # 1. make one row stop early: a token it first emits at step j >= 3 becomes the EOS id
    free, _ = generate(eos=2)
    row, j = next(
        (r, j) for j in range(3, n_new) for r in range(3) if free[r, j] not in free[r, :j]
    )
    eos = int(free[row, j])
    want, scores = generate(eos=eos)
    assert (want[row, : j + 1] == free[row, : j + 1]).all() and (want[row, j + 1 :] == 0).all()
    # 2. every greedy choice HF made is clear of a near-tie, so the comparison is well posed
    for row, seq in enumerate(want):
        stop = list(seq).index(eos) if eos in seq else n_new - 1
        top2 = np.sort(scores[row, : stop + 1], axis=-1)[:, -2:]
        assert (top2[:, 1] - top2[:, 0]).min() > 1e-4, (row, top2)
    sample = jax.jit(sampling.sample, static_argnums=(5, 6))
    scfg = sampling.SamplingConfig(max_new_tokens=n_new, greedy=True, eos_id=eos, pad_id=0)
    out = sample(
        graphdef, params, jnp.asarray(tokens), jnp.asarray(valid), jax.random.key(0), 1, scfg
    )
    np.testing.assert_array_equal(np.asarray(out.tokens_NxT), want)
