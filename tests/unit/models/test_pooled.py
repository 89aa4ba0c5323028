"""The pooled classifier: pooling arithmetic, the declared pooling of a sentence-transformers folder, and a save /
load round trip that plain transformers and tunesmith both read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunesmith.models.pooled import (
    HEAD_FILE,
    PooledClassifier,
    declared_pooling,
    is_pooled,
    needs_pooled,
    pool,
    resolve_pooling,
)


def tiny_bert() -> torch.nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    return BertModel(cfg)


def test_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, -4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool(hidden, mask, "mean").tolist() == [[2.0, -1.0]]
    assert pool(hidden, mask, "max").tolist() == [[3.0, 2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 2.0]]


def test_declared_pooling_reads_the_sentence_transformers_modules(tmp_path: Path):
    assert declared_pooling(tmp_path) is None
    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
                    {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
    )  # fmt: skip
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert declared_pooling(tmp_path) == "cls"
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    assert declared_pooling(tmp_path) == "mean"
    assert resolve_pooling("auto", tmp_path) == "mean"
    assert resolve_pooling("max", tmp_path) == "max"
    assert resolve_pooling("auto", tmp_path / "plain") == "cls"


def test_only_the_transformers_head_case_stays_plain():
    assert not needs_pooled("cls", [])
    assert needs_pooled("cls", [64]) and needs_pooled("mean", []) and needs_pooled("max", [])


def test_mlp_head_save_and_load_round_trip(tmp_path: Path):
    from transformers import AutoModel

    model = PooledClassifier(tiny_bert(), {"pooling": "mean", "hidden": [8], "dropout": 0.2, "labels": ["a", "b", "c"]})
    assert [type(m).__name__ for m in model.classifier] == ["Dropout", "Linear", "GELU", "Dropout", "Linear"]
    ids = torch.tensor([[2, 5, 7, 0], [3, 4, 0, 0]])
    mask = (ids > 0).long()
    model.eval()
    logits = model(input_ids=ids, attention_mask=mask).logits
    assert logits.shape == (2, 3)
    model.save_pretrained(tmp_path)
    assert is_pooled(tmp_path) and (tmp_path / HEAD_FILE).is_file()
    again = PooledClassifier.from_pretrained(tmp_path)
    assert torch.allclose(again(input_ids=ids, attention_mask=mask).logits, logits, atol=1e-6)
    assert again.config.id2label == {0: "a", 1: "b", 2: "c"}
    encoder = AutoModel.from_pretrained(tmp_path)  # plain transformers reads the encoder as it was saved
    with torch.no_grad():
        hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(again.classifier(pool(hidden, mask, "mean")), logits, atol=1e-5)


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="allowed: mean, cls, max"):
        PooledClassifier(tiny_bert(), {"pooling": "sum", "hidden": [], "dropout": 0.0, "labels": ["a", "b"]})
