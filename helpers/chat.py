"""Chat-format facts derived from a tokenizer's own template (no hard-coded ids or markers)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

ROLES = ("system", "user", "assistant")

# A template with one special token per role, in the style of Phi-3 / Phi-3.5.
ROLE_TOKEN_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)

# A template with header tokens around the role name, in the style of Llama 3: no token per role,
# the role is plain text between <|start_header_id|> and <|end_header_id|>.
HEADER_TOKEN_TEMPLATE = (
    "{{ '<|begin_of_text|>' }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ChatMarkers:
    """The text (and token ids) that opens each role's message and the text that ends a message."""

    role_headers: dict[str, str]
    end: str
    separator: str
    role_header_ids: dict[str, list[int]]
    end_ids: list[int]


def _sentinels() -> list[dict[str, str]]:
    """Return a three-message chat whose contents are easy to find in the rendered text."""
    return [{"role": role, "content": f"@@{role.upper()}_CONTENT@@"} for role in ROLES]


def _header_start(between: str, role: str, specials: list[str]) -> int:
    """Return where the role header begins: at the last special token at or before the role name."""
    at = between.rfind(role)
    if at < 0:
        raise ValueError(f"The chat template does not write the role name {role!r}.")
    starts = [i for token in specials for i in _find_all(between, token) if i <= at]
    return max(starts) if starts else 0


def _find_all(text: str, token: str) -> list[int]:
    """Return every index at which ``token`` occurs in ``text``."""
    found, i = [], text.find(token)
    while i >= 0:
        found.append(i)
        i = text.find(token, i + 1)
    return found


def chat_markers(tokenizer) -> ChatMarkers:
    """Return the role headers and end marker that ``tokenizer``'s chat template writes."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("This tokenizer has no chat template, so it has no chat format to derive.")
    messages = _sentinels()
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    specials = [t.content for t in tokenizer.added_tokens_decoder.values() if t.content]
    positions = [(text.index(m["content"]), text.index(m["content"]) + len(m["content"])) for m in messages]
    after_last = text[positions[-1][1]:]
    end = next((t for t in sorted(specials, key=len, reverse=True) if after_last.startswith(t)), None)
    if end is None:
        raise ValueError("Cannot find the end-of-message token after a message in the chat template.")
    headers, separator = {}, ""
    for i, (role, (start, _)) in enumerate(zip(ROLES, positions)):
        before = text[positions[i - 1][1] if i else 0:start]
        begin = _header_start(before, role, specials)
        headers[role] = before[begin:]
        if i:
            separator = before[len(end):begin]
    encode = lambda s: tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    return ChatMarkers(headers, end, separator, {r: encode(h) for r, h in headers.items()}, encode(end))


def role_token_tokenizer(base):
    """Return a copy of ``base`` that uses Phi-3.5-style role tokens (<|user|> ... <|end|>)."""
    tokenizer = copy.deepcopy(base)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]},
        replace_extra_special_tokens=False)
    tokenizer.chat_template = ROLE_TOKEN_TEMPLATE
    return tokenizer


def header_token_tokenizer(base):
    """Return a copy of ``base`` that uses Llama-3-style header tokens (<|start_header_id|>user<|end_header_id|>)."""
    tokenizer = copy.deepcopy(base)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                       "<|eot_id|>"]},
        replace_extra_special_tokens=False)
    tokenizer.chat_template = HEADER_TOKEN_TEMPLATE
    return tokenizer
