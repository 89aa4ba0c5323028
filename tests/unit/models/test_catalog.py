from pathlib import Path

import pytest

from tunesmith.errors import ConfigError
from tunesmith.models.catalog import list_models, resolve


def test_catalog_default_resolves_offline():
    src = resolve("minilm-l6")
    assert src.catalog == "minilm-l6" and (Path(src.path) / "model.safetensors").is_file()
    assert any(r["name"] == "minilm-l6" and r["installed"] == "yes" for r in list_models())


def test_local_folder_and_hub_id(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve(str(tmp_path)).local
    hub = resolve("someone/some-model")
    assert not hub.local and hub.path == "someone/some-model"


@pytest.mark.parametrize("spec", ["minilm-xl", "./missing/folder"])
def test_unknown_model_says_what_is_allowed(spec: str):
    with pytest.raises(ConfigError, match="minilm-l6"):
        resolve(spec)


def test_folder_without_config(tmp_path: Path):
    with pytest.raises(ConfigError, match="no config.json"):
        resolve(str(tmp_path))
