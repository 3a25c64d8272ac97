"""Really loading the embedded models: full precision, 8-bit and 4-bit on the CPU."""

from __future__ import annotations

import pytest
import torch

import helpers


def chat_reply(tokenizer, model, question: str, max_new_tokens: int = 16) -> str:
    """Return the model's greedy reply to one user message."""
    enc = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True).to(model.device)
    out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


@pytest.fixture(scope="module")
def chat():
    return helpers.load_model("chat", quantization=None)


def test_chat_model_answers_coherently(chat):
    tokenizer, model, report = chat
    assert report.source.kind == "embedded"
    assert report.plan.quantization is None and report.plan.dtype == torch.float32
    assert "Paris" in chat_reply(tokenizer, model, "What is the capital of France?")


def test_report_describes_the_load(chat):
    report = chat.report
    assert report.footprint_bytes == chat.model.get_memory_footprint() > 100e6
    assert report.seconds > 0
    assert "SmolLM2" in str(report) and "fp32" in str(report)


def test_pad_token_is_set(chat):
    assert chat.tokenizer.pad_token is not None


@pytest.mark.parametrize("quantization,layer", [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_quantized_load_generates_on_cpu(quantization, layer, chat):
    tokenizer, model, report = helpers.load_model("chat", quantization=quantization)
    assert report.plan.quantization == quantization
    assert any(type(m).__name__ == layer for m in model.modules()), f"no {layer} layers"
    assert report.footprint_bytes < 0.5 * chat.report.footprint_bytes
    reply = chat_reply(tokenizer, model, "What is the capital of France?", max_new_tokens=8)
    assert reply.strip(), "the quantized model generated nothing"


def test_eager_attention_returns_attentions():
    tokenizer, model, report = helpers.load_model("encoder", attn_implementation="eager", verbose=False)
    assert report.attn_implementation == "eager"
    out = model(**tokenizer("a short sentence", return_tensors="pt"), output_attentions=True)
    assert len(out.attentions) == model.config.num_hidden_layers


def test_sequence_classification_head():
    tokenizer, model, _ = helpers.load_model("encoder", task="sequence-classification", num_labels=3,
                                             verbose=False)
    logits = model(**tokenizer(["one", "two"], return_tensors="pt", padding=True)).logits
    assert logits.shape == (2, 3)


def test_token_classification_head():
    labels = ["O", "B-PER", "I-PER"]
    tokenizer, model, report = helpers.load_model("encoder", task="token-classification", num_labels=3, verbose=False,
                                                  id2label=dict(enumerate(labels)))
    batch = tokenizer([["Ada", "wrote"], ["hello"]], is_split_into_words=True, return_tensors="pt", padding=True)
    assert report.task == "token-classification" and model.config.id2label[1] == "B-PER"
    assert model(**batch).logits.shape == (*batch["input_ids"].shape, 3)


def test_unknown_task():
    with pytest.raises(ValueError, match="Unknown task"):
        helpers.load_model("encoder", task="translation", verbose=False)


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_quantized_classifier_keeps_an_ordinary_head(quantization):
    tokenizer, model, _ = helpers.load_model("encoder", task="sequence-classification", num_labels=2,
                                             quantization=quantization, verbose=False)
    assert type(model.classifier) is torch.nn.Linear
    assert any("bit" in type(m).__name__ for m in model.modules()), "the encoder itself is quantized"
    logits = model(**tokenizer(["good", "bad"], return_tensors="pt", padding=True)).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
