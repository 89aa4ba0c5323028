"""Trained runs the hardening tests serve: a text classifier, a chat generator and an image classifier (one
short training each, shared by the module)."""

from __future__ import annotations

import pytest

import tunesmith
from tests.conftest import image_config, llm_config, tiny_config


@pytest.fixture(scope="module")
def classifier(tiny_model, toy_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("hard-serve")
    run = tunesmith.finetune(tiny_config(tiny_model, *toy_data, out, train__epochs=1, cache_dir=str(out / "c")))
    return tunesmith.load(run.path)


@pytest.fixture(scope="module")
def generator(tiny_llama, chat_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("hard-gen")
    run = tunesmith.finetune(llm_config(tiny_llama, *chat_data, out, train__epochs=1, cache_dir=str(out / "c")))
    return tunesmith.load(run.path)


@pytest.fixture(scope="module")
def image_model(tiny_resnet, image_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("hard-img")
    run = tunesmith.finetune(image_config(tiny_resnet, *image_data, out, train__epochs=1, cache_dir=str(out / "c")))
    return tunesmith.load(run.path)
