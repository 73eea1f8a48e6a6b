"""The real-model R1-Zero configs, end to end from a Hugging Face folder, on random tiny models.

Each `:tiny` run gets a folder built here the way a Qwen2.5 release looks: r1jax's own `save_hf` of a
random Qwen2 model (q/k/v biases, tied embeddings, bf16 compute) whose embedding has more rows than
the tokenizer has ids (Qwen2.5: 151,936 rows, 151,665 ids), and a byte-level BPE tokenizer saved by
transformers with ChatML special tokens, no BOS token, and config.json's `bos_token_id` pointing at
`<|endoftext|>`, as in the real folders. The Instruct-like folder has eos `<|im_end|>` and pad
`<|endoftext|>`; the base-like one has eos == pad == `<|endoftext|>`. The R1 tags are NOT single
tokens (as in Qwen2.5), so the format reward reads text. Then `python -m r1jax.main` runs 3 GRPO
steps and the final evaluation.
"""

import json
import math
import os
import subprocess
import sys

import pytest

tokenizers = pytest.importorskip(
    "tokenizers", reason="the `hf` extra (pip install -e '.[hf]') is not installed"
)
transformers = pytest.importorskip("transformers", reason="the `hf` extra is not installed")
pytest.importorskip("safetensors", reason="the `hf` extra is not installed")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
GSM8K = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "3+4=7\n#### 7"),
    ("A box holds 12 eggs. How many eggs are in 5 boxes?", "12*5=60\n#### 60"),
    ("Sara reads 20 pages a day. How many pages in 7 days?", "20*7=140\n#### 140"),
    ("A pen costs $2. How much do 9 pens cost?", "2*9=18\n#### 18"),
    ("There are 30 kids and 6 leave. How many stay?", "30-6=24\n#### 24"),
    ("A car goes 60 miles an hour. How far in 3 hours?", "60*3=180\n#### 180"),
    ("Ann had 50 dollars and spent 1,200 cents. How many dollars are left?", "#### 38"),
    ("Split 48 candies among 4 kids. How many each?", "48/4=12\n#### 12"),
]


def _corpus() -> list[str]:
    from r1jax.data import countdown
    from r1jax.text import templates

    texts = [templates.render("r1_zero", q) for q, _ in GSM8K]
    texts += [countdown.question([3, 5, 7], 22), "<think> 3*5=15, 15+7=22 </think>"]
    texts += ["<answer> 3*5+7 </answer> 0123456789 +-*/=()"]
    return texts * 3


def build_qwen2_folder(folder: str, eos: str, pad: str) -> None:
    """A random Qwen2 model folder with a ChatML tokenizer (see the module docstring)."""
    import jax

    from r1jax.model import ModelConfig, api, hf
    from r1jax.parallel import sharding

    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Sequence(
        [
            tokenizers.pre_tokenizers.Digits(individual_digits=True),
            tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=420,
        special_tokens=SPECIALS,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer)
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, pad_token=pad, chat_template=CHATML
    )
    os.makedirs(folder, exist_ok=True)
    fast.save_pretrained(folder)
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    with open(os.path.join(folder, "config.json"), "w") as fh:  # token ids, as Qwen2.5 ships
        json.dump({"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids[eos]}, fh)
    stops = [ids[eos]] + ([ids["<|endoftext|>"]] if eos != "<|endoftext|>" else [])
    with open(os.path.join(folder, "generation_config.json"), "w") as fh:
        json.dump({"bos_token_id": ids["<|endoftext|>"], "eos_token_id": stops}, fh)
    # padded vocabulary: the model has rows no tokenizer id reaches (a policy can still sample them)
    vocab = -(-len(fast) // 64) * 64 + 64
    cfg = ModelConfig(
        vocab_size=vocab,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        mlp_dim=128,
        qkv_bias=True,
        tie_embeddings=True,
        rope_theta=1e6,
        max_len=2048,
    )
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    _, params, _ = api.create(cfg, 0, mesh, sharding.DEFAULT_RULES)
    hf.save_hf(folder, params, cfg, tokenizer_dir=folder)


@pytest.fixture(scope="module")
def instruct_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("qwen2_instruct"))
    build_qwen2_folder(folder, eos="<|im_end|>", pad="<|endoftext|>")
    return folder


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("qwen2_base"))
    build_qwen2_folder(folder, eos="<|endoftext|>", pad="<|endoftext|>")
    return folder


@pytest.fixture(scope="module")
def llama3_tokenizer_folder(tmp_path_factory):
    """A Llama-3-style tokenizer: BOS added by the post-processor and written by the template."""
    folder = str(tmp_path_factory.mktemp("llama3_tok"))
    specials = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_corpus(), trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    template = (
        "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
        "'<|end_header_id|>\n\n' + m['content'] + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
        "{% endif %}"
    )
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token="<|eot_id|>", chat_template=template
    ).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["instruct", "base", "llama3"])
def test_prompt_ids_match_transformers(kind, request):
    """R1-Zero and chat prompts are exactly transformers' ids: no BOS for Qwen2 (whose config.json
    points bos_token_id at <|endoftext|>), one BOS for Llama-3 (post-processor and template)."""
    from r1jax.data import prompts
    from r1jax.text import templates
    from r1jax.tokenizers import hf as hf_tokenizer

    folder = request.getfixturevalue(
        {"instruct": "instruct_folder", "base": "base_folder"}.get(kind, "llama3_tokenizer_folder")
    )
    tok, ref = hf_tokenizer.load(folder), transformers.AutoTokenizer.from_pretrained(folder)
    question = GSM8K[0][0]
    want = ref(templates.render("r1_zero", question))["input_ids"]
    assert prompts.encode_prompt(tok, "r1_zero", question) == want
    assert (want[0] == tok.bos_id) == (kind == "llama3") and tok.add_bos == (kind == "llama3")
    chat = ref.apply_chat_template(
        hf_tokenizer.r1_messages(question), tokenize=True, add_generation_prompt=True
    )
    chat = list(chat["input_ids"] if hasattr(chat, "keys") else chat)
    assert prompts.encode_prompt(tok, "chat", question) == chat
    assert chat.count(ref.convert_tokens_to_ids("<|begin_of_text|>")) == (kind == "llama3")


def test_special_ids_and_padded_vocab(instruct_folder, base_folder):
    """eos/pad/stop ids as the folders declare them; ids past the tokenizer decode to U+FFFD."""
    from r1jax.model import hf
    from r1jax.tokenizers import hf as hf_tokenizer

    inst, base = hf_tokenizer.load(instruct_folder), hf_tokenizer.load(base_folder)
    endoftext, im_end = (inst.encode(s)[0] for s in ("<|endoftext|>", "<|im_end|>"))
    assert (inst.eos_id, inst.pad_id, inst.stop_ids) == (im_end, endoftext, (im_end, endoftext))
    assert base.eos_id == base.pad_id == endoftext and base.stop_ids == (endoftext,)
    rows = hf.read_config(instruct_folder)["vocab_size"]
    assert rows > inst.vocab_size  # padded embedding, as in Qwen2.5
    ids = inst.encode("<answer> 7 </answer>")
    got = inst.decode(ids[:2] + [rows - 1, inst.vocab_size] + ids[2:] + [inst.eos_id])
    assert got == inst.decode(ids[:2]) + "\ufffd\ufffd" + inst.decode(ids[2:])


def _run(config: str, workdir: str, *overrides: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")  # one device, as on a laptop
    cmd = [sys.executable, "-m", "r1jax.main", f"--config={config}", f"--workdir={workdir}"]
    out = subprocess.run(
        cmd + list(overrides), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _check_run(workdir: str, problems: int) -> dict:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert [r["step"] for r in rows] == [0, 1, 2]
    for r in rows:
        for k in ("reward", "loss", "kl", "grad_norm", "entropy", "completion_length_mean"):
            assert math.isfinite(r[k]), (k, r)
        assert r["nonfinite"] == 0 and r["fused"] == 0  # host rewards: the split step
    assert "eval_pass@1" in rows[1]
    with open(os.path.join(workdir, "final_eval.json")) as f:
        report = json.load(f)
    assert report["summary"]["problems"] == problems
    assert 0.0 <= report["summary"]["pass@1"] <= 1.0
    return report


@pytest.mark.slow
def test_qwen2p5_0p5b_gsm8k_tiny(instruct_folder, tmp_path):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in GSM8K))
    workdir = str(tmp_path / "run")
    _run(
        "experiments/r1_zero_qwen2p5_0p5b_gsm8k.py:tiny",
        workdir,
        f"--config.init.hf_dir={instruct_folder}",
        f"--config.task.options.path={data}",
        f"--config.task.data_dir={tmp_path / 'tfds'}",
    )
    from r1jax.data import tasks

    test = tasks.load(
        "jsonl",
        "test",
        str(tmp_path / "tfds"),
        path=str(data),
        answer_format="gsm8k",
        name="gsm8k",
        test_fraction=0.25,
    )
    _check_run(workdir, len(test))


@pytest.mark.slow
def test_qwen2p5_1p5b_countdown_tiny(base_folder, tmp_path):
    workdir = str(tmp_path / "run")
    _run(
        "experiments/r1_zero_qwen2p5_1p5b_countdown.py:tiny",
        workdir,
        f"--config.init.hf_dir={base_folder}",
        f"--config.task.data_dir={tmp_path / 'tfds'}",
    )
    _check_run(workdir, 8)
