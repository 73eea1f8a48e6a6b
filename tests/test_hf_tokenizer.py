"""A model folder's own tokenizer and chat template against transformers' AutoTokenizer.

Tiny byte-level BPE tokenizers are trained with `tokenizers` and saved by transformers with a
ChatML (Qwen-style) or Llama-3-style chat template; r1jax must render the same prompt text and the
same prompt ids as `apply_chat_template`, and decode its own ids back to the text.
"""

import json
import os
import sys
from collections.abc import Mapping

import pytest

tokenizers = pytest.importorskip(
    "tokenizers", reason="the `hf` extra (pip install -e '.[hf]') is not installed"
)
transformers = pytest.importorskip("transformers", reason="the `hf` extra is not installed")

from r1jax.text import templates  # noqa: E402
from r1jax.tokenizers import hf as hf_tokenizer  # noqa: E402
from r1jax.tokenizers import sentencepiece as toy_tokenizer  # noqa: E402

# Block tags on their own lines, a namespace and raise_exception: exercises trim/lstrip_blocks.
CHATML = """{% set ns = namespace(system=false) %}
{% for message in messages %}
    {% if message['role'] not in ['system', 'user', 'assistant'] %}
        {{ raise_exception('unknown role') }}
    {% endif %}
    {% if message['role'] == 'system' %}{% set ns.system = true %}{% endif %}
    {% if loop.first and not ns.system %}
        {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}
    {% endif %}
    {{- '<|im_start|>' + message['role'] + '\n' + message['content'] | trim + '<|im_end|>\n' -}}
{% endfor %}
{% if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' -}}
{% endif %}"""
LLAMA3 = """{{ bos_token }}{% for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' -}}
{% endfor %}
{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"""
TEXTS = [
    "Using numbers 3, 5 and 7, make 22.",
    "<think> 3*5=15, 15+7=22 </think> <answer>3*5+7</answer>",
]
QUESTION = "Using the numbers [3, 5, 7], create an equation that equals 22. Über 1+1?"


def _save(
    folder, specials, template, bos=None, eos="<|im_end|>", pad="<|endoftext|>", bos_post=False
):
    """Trains a byte-level BPE on TEXTS with `specials` and saves it as transformers does."""
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TEXTS * 5, trainer)
    tok.add_tokens(["<think>", "</think>"])  # R1 tags: added, not special (as in R1-Distill)
    if bos_post:  # Llama-3 adds BOS in its post-processor; apply_chat_template must not double it
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, chat_template=template
    )
    fast.save_pretrained(folder)
    return transformers.AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def chatml(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("chatml"))
    ref = _save(folder, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], CHATML)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump({"bos_token_id": 0, "eos_token_id": 2}, fh)
    with open(os.path.join(folder, "generation_config.json"), "w") as fh:
        json.dump({"eos_token_id": [2, 0]}, fh)
    return folder, ref


def _hf_ids(ref, messages):
    out = ref.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    return list(out["input_ids"] if isinstance(out, Mapping) else out)


@pytest.mark.parametrize("system", [hf_tokenizer.R1_SYSTEM, None])
def test_chatml_prompt_matches_transformers(chatml, system):
    folder, ref = chatml
    tok = hf_tokenizer.load(folder)
    messages = hf_tokenizer.r1_messages(QUESTION, system=system)
    text = tok.apply_chat_template(messages)
    assert text == ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and ("helpful" in text) == (system is None)
    assert tok.encode_chat(messages) == _hf_ids(ref, messages)
    assert tok.encode_chat(messages)[0] == ref.convert_tokens_to_ids("<|im_start|>")


def test_ids_decode_and_tags(chatml):
    folder, ref = chatml
    tok = hf_tokenizer.load(folder)
    assert (tok.eos_id, tok.pad_id, tok.bos_id) == (2, 0, 0)  # bos from config.json
    assert tok.stop_ids == (2, 0) and tok.vocab_size == len(ref)
    for text in TEXTS + [QUESTION]:
        ids = tok.encode(text)
        assert ids == ref(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids + [tok.eos_id, tok.pad_id]) == text
    assert tok.tag_id("<think>") == ref.convert_tokens_to_ids("<think>")
    assert tok.tag_id("</answer>") is None  # several pieces in this vocabulary
    assert tok.decode(tok.encode("<|im_start|>user\nhi<|im_end|>")) == "user\nhi"


def test_llama3_template_has_one_bos(tmp_path):
    specials = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
    ]
    ref = _save(
        str(tmp_path),
        specials,
        LLAMA3,
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad=None,
        bos_post=True,
    )
    tok = hf_tokenizer.load(str(tmp_path))
    messages = hf_tokenizer.r1_messages(QUESTION)
    assert tok.apply_chat_template(messages) == ref.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    ids = tok.encode_chat(messages)
    assert ids == _hf_ids(ref, messages) and ids.count(tok.bos_id) == 1 and ids[0] == tok.bos_id
    assert tok.pad_id == tok.eos_id == ref.convert_tokens_to_ids("<|eot_id|>")


def test_no_template_falls_back_to_r1_zero(chatml, tmp_path):
    folder, _ = chatml
    plain = str(tmp_path / "plain")
    os.makedirs(plain)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        with open(os.path.join(folder, f)) as src, open(os.path.join(plain, f), "w") as dst:
            cfg = json.load(src)
            cfg.pop("chat_template", None)
            json.dump(cfg, dst)
    tok = hf_tokenizer.load(plain)
    assert tok.chat_template is None
    assert tok.apply_chat_template(hf_tokenizer.r1_messages(QUESTION)) == templates.render(
        "r1_zero", QUESTION
    )


def test_sentencepiece_model_folder(tmp_path):
    sp = toy_tokenizer.train(TEXTS * 20 + [QUESTION], vocab_size=300)
    sp.save(str(tmp_path / "tokenizer.model"))
    tcfg = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "chat_template": "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}",
    }
    with open(tmp_path / "tokenizer_config.json", "w") as fh:
        json.dump(tcfg, fh)
    tok = hf_tokenizer.load(str(tmp_path))
    assert (tok.bos_id, tok.eos_id) == (sp.bos_id, sp.eos_id)
    assert (
        tok.encode(TEXTS[1]) == sp.encode(TEXTS[1]) and tok.decode(sp.encode(QUESTION)) == QUESTION
    )
    assert tok.tag_id("<think>") == sp.tag_id("<think>") is not None
    ids = tok.encode_chat([{"role": "user", "content": "1+1"}], add_generation_prompt=False)
    assert ids == [sp.bos_id] + sp.encode("[user] 1+1") + [sp.eos_id]


def test_missing_tokenizers_library_is_a_clear_error(chatml, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[hf\]"'):
        hf_tokenizer.load(chatml[0])
