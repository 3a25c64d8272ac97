"""Chat markers derived from the tokenizer's template, for ChatML, role-token and header-token styles."""

from __future__ import annotations

import pytest

import helpers


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(helpers.resolve_model("chat").location)


def render(tokenizer, messages):
    return tokenizer.apply_chat_template(messages, tokenize=False)


STYLES = {"chatml": lambda tok: tok, "role-tokens": helpers.role_token_tokenizer,
          "header-tokens": helpers.header_token_tokenizer}


@pytest.mark.parametrize("style", list(STYLES))
def test_markers_rebuild_the_rendered_chat(tokenizer, style):
    tok = STYLES[style](tokenizer)
    markers = helpers.chat_markers(tok)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\nthere"},
                {"role": "assistant", "content": "Hello."}]
    rebuilt = "".join(markers.role_headers[m["role"]] + m["content"] + markers.end + markers.separator
                      for m in messages)
    assert rebuilt in render(tok, messages)
    for role, header in markers.role_headers.items():
        assert tok.decode(markers.role_header_ids[role]) == header
    assert tok.convert_ids_to_tokens(markers.end_ids) == [markers.end]
    assert tok.convert_ids_to_tokens(markers.end_ids)[0] in tok.all_special_tokens


def test_role_token_tokenizer_leaves_the_base_alone(tokenizer):
    size = len(tokenizer)
    styled = helpers.role_token_tokenizer(tokenizer)
    assert len(tokenizer) == size and len(styled) == size + 4
    assert "<|user|>" in styled.all_special_tokens and "<|user|>" not in tokenizer.all_special_tokens


def test_header_token_markers_are_llama3_shaped(tokenizer):
    """The role is plain text between two header tokens; a message ends with its own end token."""
    markers = helpers.chat_markers(helpers.header_token_tokenizer(tokenizer))
    assert markers.role_headers["user"] == "<|start_header_id|>user<|end_header_id|>\n\n"
    assert markers.end == "<|eot_id|>" and markers.separator == ""


def test_header_token_tokenizer_leaves_the_base_alone(tokenizer):
    size = len(tokenizer)
    styled = helpers.header_token_tokenizer(tokenizer)
    assert len(tokenizer) == size and len(styled) == size + 4
    assert "<|eot_id|>" in styled.all_special_tokens and "<|eot_id|>" not in tokenizer.all_special_tokens


def test_no_template_is_a_clear_error(tokenizer):
    from transformers import AutoTokenizer

    plain = AutoTokenizer.from_pretrained(helpers.resolve_model("encoder").location)
    plain.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        helpers.chat_markers(plain)
