"""Every kind of model folder a run writes loads with plain transformers / PEFT (no tunesmith) and answers as
tunesmith's own predictor does; each carries a model card with the Hub's metadata."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

import tunesmith
from tests.conftest import image_config, llm_config, tiny_config
from tunesmith.pipeline.model_card import card, hub_base

TEXTS = ["great superb moving film", "dull awful boring plot"]


def _front_matter(path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits, -1).detach().numpy()


def test_text_classifier_folders_load_with_transformers_and_peft(tiny_model, toy_data, tmp_path, cache_dir):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    common = {"eval__probe": False, "classifier__keep_better": False, "classifier__pooling": "cls"}
    full = tunesmith.finetune(tiny_config(tiny_model, *toy_data, tmp_path / "runs", train__epochs=2, **common))
    lora = tunesmith.finetune(tiny_config(tiny_model, *toy_data, tmp_path / "runs", method="lora", train__epochs=2,
                                          **common))  # fmt: skip
    for run, folder in ((full, "model"), (lora, "adapter")):
        want = np.array(
            [[p.probabilities[lab] for lab in ("pos", "neg")] for p in tunesmith.load(run.path).predict(TEXTS)]
        )
        tok = AutoTokenizer.from_pretrained(run.path / folder)
        if folder == "model":
            model = AutoModelForSequenceClassification.from_pretrained(run.path / folder)
        else:
            base = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=2)
            model = PeftModel.from_pretrained(base, run.path / folder)
        model.eval()
        got = _softmax(model(**tok(TEXTS, return_tensors="pt", padding=True)).logits)
        order = [model.config.label2id[lab] if hasattr(model, "config") and model.config.label2id.get(lab) is not None
                 else i for i, lab in enumerate(("pos", "neg"))]  # fmt: skip
        assert got[:, order] == pytest.approx(want, abs=1e-5)
        meta = _front_matter(run.path / folder / "README.md")
        assert meta["library_name"] == ("transformers" if folder == "model" else "peft")
        assert meta["pipeline_tag"] == "text-classification" and "accuracy" in meta["metrics"]
        assert meta["tunesmith"]["data_fingerprint"] == run.manifest["data"]["fingerprint"]


def test_causal_lm_folders_load_with_transformers_and_peft(tiny_llama, chat_data, tmp_path, cache_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tunesmith.finetune(llm_config(tiny_llama, *chat_data, tmp_path / "runs", train__epochs=1, lora__merge=True))
    gen = tunesmith.load(run.path)
    want = gen.generate("What does a cat say?", max_new_tokens=8)
    tok = AutoTokenizer.from_pretrained(run.path / "model")
    text = tok.apply_chat_template([{"role": "user", "content": "What does a cat say?"}], add_generation_prompt=True,
                                   tokenize=False)  # fmt: skip
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    merged = AutoModelForCausalLM.from_pretrained(run.path / "model")
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), run.path / "adapter")
    for model in (merged, adapted):
        out = model.generate(
            ids, max_new_tokens=8, do_sample=False, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>")
        )
        assert tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip() == want
    for folder, library in (("model", "transformers"), ("adapter", "peft")):
        meta = _front_matter(run.path / folder / "README.md")
        assert meta["library_name"] == library and meta["pipeline_tag"] == "text-generation"


def test_image_classifier_folder_loads_with_a_transformers_pipeline(tiny_vit, image_data, tmp_path, cache_dir):
    from transformers import pipeline

    run = tunesmith.finetune(image_config(tiny_vit, *image_data, tmp_path / "runs", train__epochs=1,
                                          eval__probe=False, classifier__keep_better=False))  # fmt: skip
    files = sorted(image_data[1].rglob("*.png"))[:4]
    want = [p.label for p in tunesmith.load(run.path).predict(files)]
    classify = pipeline("image-classification", model=str(run.path / "model"))
    assert [r[0]["label"] for r in classify([str(f) for f in files])] == want
    assert _front_matter(run.path / "model" / "README.md")["pipeline_tag"] == "image-classification"


def test_catalog_bases_are_named_by_hub_id():
    manifest = {"task": "causal-lm", "method": "lora", "base_model": {"spec": "smollm2-135m", "fingerprint": "x"},
                "data": {"fingerprint": "abc", "train_examples": 10}, "metrics": {"loss": 1.0, "n": 5}}  # fmt: skip
    assert hub_base(manifest) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    meta = yaml.safe_load(card(manifest, "peft").split("---\n")[1])
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["license"] == "apache-2.0"
    assert hub_base({"base_model": {"spec": "/some/local/folder"}}) is None
    assert hub_base({"base_model": {"spec": "someone/their-model"}}) == "someone/their-model"
