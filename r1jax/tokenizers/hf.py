"""A real model's own tokenizer and chat template behind r1jax's `Tokenizer` protocol.

Reads a Hugging Face model folder: `tokenizer.json` through the `tokenizers` library (the `hf` extra)
or, failing that, a sentencepiece `tokenizer.model`; special tokens from tokenizer_config.json /
special_tokens_map.json, with config.json and generation_config.json ids as fallbacks; the chat
template from tokenizer_config.json, chat_template.jinja or chat_template.json, rendered with jinja2
the way transformers renders it (sandboxed, trim_blocks, lstrip_blocks, `tojson`, `raise_exception`).

`encode` adds no special tokens, like the toy tokenizer; chat prompts carry their own (a Llama-3
template writes `{{ bos_token }}` itself), so `encode_chat` ids equal transformers'
`apply_chat_template(..., tokenize=True)`. Do not prepend `bos_id` to them again.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from r1jax.text.templates import R1_ZERO

# The R1-Zero instruction of the DeepSeek-R1 paper, as a system message for chat models.
R1_SYSTEM = R1_ZERO[: R1_ZERO.index(" User:")]
_HINT = 'install the `hf` extra: pip install -e ".[hf]"'
Message = Mapping[str, str]


def _read_json(folder: str, name: str) -> dict[str, Any]:
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _content(token: Any) -> str | None:
    """A special token as written in tokenizer_config.json: a string or an AddedToken dict."""
    return token.get("content") if isinstance(token, dict) else token


def _first(x: Any) -> int | None:
    return (x[0] if x else None) if isinstance(x, list) else x


def _chat_template(folder: str, tcfg: Mapping[str, Any]) -> str | None:
    template = tcfg.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        template = {t["name"]: t["template"] for t in template}.get("default")
    if template:
        return template
    path = os.path.join(folder, "chat_template.jinja")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    return _read_json(folder, "chat_template.json").get("chat_template")


def _compile(template: str) -> Any:
    """The template compiled as transformers compiles it (model files are untrusted: sandboxed)."""
    try:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise ImportError(f"rendering the model's chat template needs jinja2; {_HINT}.")

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env.from_string(template)


class HFTokenizer:
    """A model folder's tokenizer; see the module docstring.

    `bos_id` is -1 when the model has none; `add_bos` says whether a plain prompt starts with it
    (as transformers' `tokenizer(text)` does); `stop_ids` holds every id generation should stop at
    (`eos_id` first, then generation_config.json's); `vocab_size` counts the tokenizer's ids, which
    may be fewer than the model's embedding rows.
    """

    def __init__(self, folder: str):
        tcfg = _read_json(folder, "tokenizer_config.json")
        smap = _read_json(folder, "special_tokens_map.json")
        mcfg = _read_json(folder, "config.json")
        gcfg = _read_json(folder, "generation_config.json")
        self.folder = folder
        self.special_tokens = {
            key: _content(tcfg.get(key) or smap.get(key))
            for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        }
        if os.path.exists(os.path.join(folder, "tokenizer.json")):
            try:
                import tokenizers
            except ImportError:
                raise ImportError(
                    f"{folder}/tokenizer.json needs the `tokenizers` library; {_HINT}."
                )
            self._tok = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
            self._sp = None
            self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
            added = self._tok.get_added_tokens_decoder()
            self._special_ids = {i for i, t in added.items() if t.special}
        elif os.path.exists(os.path.join(folder, "tokenizer.model")):
            import sentencepiece as spm

            self._tok = None
            self._sp = spm.SentencePieceProcessor(
                model_file=os.path.join(folder, "tokenizer.model")
            )
            self.vocab_size = self._sp.get_piece_size()
            added = tcfg.get("added_tokens_decoder", {})
            strings = [_content(t) for t in added.values()] + list(self.special_tokens.values())
            pieces = {s: self._sp.piece_to_id(s) for s in strings if s}
            self._sp_specials = {s: i for s, i in pieces.items() if self._sp.id_to_piece(i) == s}
            self._special_ids = set(self._sp_specials.values()) | {
                self._sp.bos_id(),
                self._sp.eos_id(),
                self._sp.pad_id(),
            }
            self._split = re.compile(
                "(" + "|".join(map(re.escape, sorted(self._sp_specials, key=len)[::-1])) + ")"
            )
        else:
            raise FileNotFoundError(f"{folder} has neither tokenizer.json nor tokenizer.model.")
        ids = {k: self._piece_id(v) for k, v in self.special_tokens.items()}
        eos = ids["eos_token"] if ids["eos_token"] is not None else _first(mcfg.get("eos_token_id"))
        if eos is None:
            raise ValueError(f"{folder}: no eos token in tokenizer_config.json nor config.json.")
        self.eos_id = int(eos)
        bos = ids["bos_token"] if ids["bos_token"] is not None else mcfg.get("bos_token_id")
        self.bos_id = -1 if bos is None else int(_first(bos))
        pad = ids["pad_token"] if ids["pad_token"] is not None else mcfg.get("pad_token_id")
        self.pad_id = self.eos_id if pad is None else int(_first(pad))
        extra = gcfg.get("eos_token_id", mcfg.get("eos_token_id"))
        extra = extra if isinstance(extra, list) else [extra]
        self.stop_ids = tuple(
            dict.fromkeys([self.eos_id] + [int(i) for i in extra if i is not None])
        )
        self.add_bos = self.bos_id >= 0 and self._adds_bos(tcfg)
        self.chat_template = _chat_template(folder, tcfg)
        self._compiled = None

    def _adds_bos(self, tcfg: Mapping[str, Any]) -> bool:
        """Whether transformers' `tokenizer(text)` starts with BOS (Llama: yes; Qwen2: no).

        tokenizer_config.json's `add_bos_token` decides when present; else a tokenizer.json's
        post-processor (Llama-3 adds BOS there), and a sentencepiece model adds it (Llama-2).
        config.json's `bos_token_id` alone (Qwen2.5 points it at <|endoftext|>) adds nothing.
        """
        if "add_bos_token" in tcfg:
            return bool(tcfg["add_bos_token"])
        if self._tok is not None:
            ids = self._tok.encode("a", add_special_tokens=True).ids
            return bool(ids) and ids[0] == self.bos_id
        return True

    def _piece_id(self, piece: str | None) -> int | None:
        if piece is None:
            return None
        if self._tok is not None:
            return self._tok.token_to_id(piece)
        return self._sp_specials.get(piece)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, special-token strings in it included, with no BOS/EOS added."""
        if self._tok is not None:
            return list(self._tok.encode(text, add_special_tokens=False).ids)
        out: list[int] = []
        for part in self._split.split(text) if self._sp_specials else [text]:
            if part in self._sp_specials:
                out.append(self._sp_specials[part])
            elif part:
                out.extend(self._sp.encode(part))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` with special tokens (pad, eos, chat markers) dropped; R1 tags are kept.

        Ids the tokenizer lacks (a model's padded embedding rows, which a policy can still sample)
        decode to U+FFFD, as with the toy tokenizer, instead of vanishing or raising.
        """
        out, run = [], []
        for i in map(int, ids):
            if i in self._special_ids:
                continue
            if 0 <= i < self.vocab_size:
                run.append(i)
                continue
            out += [self._decode_run(run), "\ufffd"]
            run = []
        return "".join(out + [self._decode_run(run)])

    def _decode_run(self, ids: list[int]) -> str:
        if self._tok is not None:
            return self._tok.decode(ids, skip_special_tokens=False)
        return self._sp.decode(ids)

    def tag_id(self, tag: str) -> int | None:
        """The id of `tag` if the vocabulary writes it as exactly one token, else None."""
        ids = self.encode(tag)
        return ids[0] if len(ids) == 1 else None

    def apply_chat_template(
        self, messages: Sequence[Message], add_generation_prompt: bool = True
    ) -> str:
        """The prompt text for `messages` under the model's chat template.

        Without a template, the R1-Zero plain format: "{system} User: {...} Assistant:", which for
        `r1_messages(question)` is exactly `templates.render("r1_zero", question)`.
        """
        if self.chat_template is None:
            role = {"user": "User: ", "assistant": "Assistant: ", "system": ""}
            text = " ".join(role[m["role"]] + m["content"] for m in messages)
            return text + " Assistant:" if add_generation_prompt else text
        if self._compiled is None:
            self._compiled = _compile(self.chat_template)
        specials = {k: v for k, v in self.special_tokens.items() if v is not None}
        return self._compiled.render(
            messages=[dict(m) for m in messages],
            add_generation_prompt=add_generation_prompt,
            tools=None,
            documents=None,
            **specials,
        )

    def encode_chat(
        self, messages: Sequence[Message], add_generation_prompt: bool = True
    ) -> list[int]:
        """Prompt ids for `messages`: the rendered template encoded (it carries its own BOS)."""
        return self.encode(self.apply_chat_template(messages, add_generation_prompt))


def r1_messages(question: str, system: str | None = R1_SYSTEM) -> list[dict[str, str]]:
    """An R1 prompt as chat messages: the R1-Zero instruction as system message, then the question.

    Pass `system=None` for models (DeepSeek-R1-Distill) whose authors advise no system prompt.
    """
    user = [{"role": "user", "content": question}]
    return user if system is None else [{"role": "system", "content": system}] + user


def load(folder: str) -> HFTokenizer:
    """The tokenizer of a Hugging Face model folder."""
    return HFTokenizer(folder)
