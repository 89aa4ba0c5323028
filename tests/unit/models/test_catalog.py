from pathlib import Path

import pytest

from tunesmith.errors import ConfigError
from tunesmith.models.catalog import list_models, resolve


def test_catalog_default_resolves_offline():
    src = resolve("minilm-l6")
    assert src.catalog == "minilm-l6" and (Path(src.path) / "model.safetensors").is_file()
    assert any(r["name"] == "minilm-l6" and r["installed"] == "yes" for r in list_models())


def test_local_folder_and_hub_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="pickled weights are refused"):
        resolve(str(tmp_path))  # no safetensors weights
    assert resolve(str(tmp_path), allow_pickle=True).local
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve(str(tmp_path)).local
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    hub = resolve("someone/some-model")
    assert not hub.local and hub.path == "someone/some-model"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="not in the local Hugging Face cache"):
        resolve("someone/some-model")


@pytest.mark.parametrize("spec", ["minilm-xl", "./missing/folder"])
def test_unknown_model_says_what_is_allowed(spec: str):
    with pytest.raises(ConfigError, match="minilm-l6"):
        resolve(spec)


def test_folder_without_config(tmp_path: Path):
    with pytest.raises(ConfigError, match="no config.json"):
        resolve(str(tmp_path))
