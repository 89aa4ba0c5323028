"""Causal-LM pieces on the tiny Llama: loss masking, packing without cross-example attention, the loss computed
only where labels are, text metrics and the bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunesmith.eval.compare import paired_bootstrap_mean
from tunesmith.eval.text_metrics import exact_match, rouge_l, token_f1
from tunesmith.tasks.causal_lm.loss import IGNORE, make_collate, token_loss
from tunesmith.tasks.causal_lm.rendering import render


@pytest.fixture(scope="module")
def llama(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    return model, tok


def _item(tok, record):
    ids, mask = render(tok, record)
    return {"input_ids": np.asarray(ids), "loss_mask": np.asarray(mask)}


def test_only_assistant_tokens_carry_loss(llama):
    _, tok = llama
    chat = {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What does a cat say?"},
            {"role": "assistant", "content": "A cat says meow."},
            {"role": "user", "content": "And a dog?"},
            {"role": "assistant", "content": "A dog says woof."},
        ]
    }
    ids, mask = render(tok, chat)
    ids, mask = np.asarray(ids), np.asarray(mask)
    # The whole sequence is exactly what the chat template renders.
    assert tok.decode(ids) == tok.apply_chat_template(chat["messages"], tokenize=False)
    # The loss-carrying tokens, decoded, are the two answers with their end-of-turn marker and nothing else.
    runs, start = [], None
    for i, m in enumerate([*mask, False]):
        if m and start is None:
            start = i
        if not m and start is not None:
            runs.append(tok.decode(ids[start:i]))
            start = None
    assert runs == ["A cat says meow.<|im_end|>", "A dog says woof.<|im_end|>"]


def test_prompt_completion_trains_on_the_completion_and_eos(llama):
    _, tok = llama
    ids, mask = render(tok, {"prompt": "What colour is the sky?", "completion": " The sky is blue."})
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == " The sky is blue.<|im_end|>"
    assert tok.decode([i for i, m in zip(ids, mask) if not m]) == "What colour is the sky?"


def test_collate_targets_are_the_next_answer_token(llama):
    _, tok = llama
    item = _item(tok, {"prompt": "What colour is the sky?", "completion": " The sky is blue."})
    batch = make_collate(tok.pad_token_id, 64, packing=False)([item])
    ids, targets = batch["input_ids"][0], batch["targets"][0]
    n = len(item["input_ids"])
    expected = [int(ids[t + 1]) if item["loss_mask"][t + 1] else IGNORE for t in range(n - 1)] + [IGNORE]
    assert targets[:n].tolist() == expected
    assert int(batch["real_tokens"]) == n


def test_packed_examples_do_not_attend_to_each_other(llama):
    model, tok = llama
    records = [
        {"prompt": "What colour is the sky?", "completion": " The sky is blue."},
        {"prompt": "What does a cow say?", "completion": " A cow says moo."},
        {"prompt": "What colour is the snow? It is cold.", "completion": " The snow is white."},
    ]
    items = [_item(tok, r) for r in records]
    packed = make_collate(tok.pad_token_id, 256, packing=True)(items)
    assert packed["input_ids"].shape[0] == 1  # all three share one row
    with torch.no_grad():
        row = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False).logits[0]
        # Collate places the longest first; find each example's span by its token ids.
        order = sorted(range(3), key=lambda i: -len(items[i]["input_ids"]))
        at = 0
        for i in order:
            x = torch.as_tensor(items[i]["input_ids"]).unsqueeze(0)
            alone = model(input_ids=x, use_cache=False).logits[0]
            n = x.shape[1]
            torch.testing.assert_close(row[at : at + n], alone, atol=1e-5, rtol=1e-4)
            at += n


def test_loss_on_selected_positions_equals_the_full_logits_loss(llama):
    model, tok = llama
    items = [
        _item(
            tok,
            {
                "messages": [
                    {"role": "user", "content": f"What does a {a} say?"},
                    {"role": "assistant", "content": f"A {a} says {s}."},
                ]
            },
        )
        for a, s in (("cat", "meow"), ("duck", "quack"), ("owl", "hoot"))
    ]
    for packing in (True, False):
        batch = make_collate(tok.pad_token_id, 256, packing=packing)(items)
        with torch.no_grad():
            ours = token_loss(model, batch)
            logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
            ref = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), batch["targets"].reshape(-1), ignore_index=IGNORE
            )
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # The hook that narrows the output projection is gone afterwards: full logits again.
    with torch.no_grad():
        assert model(input_ids=batch["input_ids"]).logits.shape[:2] == batch["input_ids"].shape


def test_text_metrics():
    assert token_f1("The sky is blue.", "the sky is BLUE") == 1.0
    assert token_f1("blue sky", "the sky is blue") == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))
    assert token_f1("nothing alike", "the sky is blue") == 0.0
    assert rouge_l("sky is blue", "the sky is blue") == pytest.approx(2 * 1.0 * 0.75 / 1.75)  # rouge-score keeps "the"
    assert rouge_l("blue is sky", "sky is blue") == pytest.approx(1 / 3)
    assert exact_match("The answer!", "answer") == 1.0
    assert exact_match("an answer here", "answer") == 0.0


def test_paired_bootstrap_mean_interval_covers_a_real_difference():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 0.5, size=200)
    better = np.clip(base + 0.2 + rng.normal(0, 0.05, size=200), 0, 1)
    c = paired_bootstrap_mean(better, base, 1000, 0.95, seed=1)
    assert c["ci_low"] > 0.15 and c["ci_high"] < 0.25 and c["significant"]
    same = paired_bootstrap_mean(base, base[::-1], 1000, 0.95, seed=1)
    assert same["ci_low"] < 0 < same["ci_high"] and not same["significant"]


def test_pack_rows_places_every_example_once_within_capacity_and_evenly():
    from tunesmith.train.batching import pack_rows

    def first_fit(lengths: list[int], capacity: int) -> list[int]:
        fill: list[int] = []
        for n in sorted(lengths, reverse=True):
            slot = next((r for r, used in enumerate(fill) if used + n <= capacity), None)
            if slot is None:
                fill.append(n)
            else:
                fill[slot] += n
        return fill

    rng = np.random.default_rng(0)
    ours, plain, tokens = 0, 0, 0
    for _ in range(200):
        lengths = rng.integers(8, 120, size=16).tolist()
        rows, fill = pack_rows(lengths, 256)
        assert sorted(i for r in rows for i in r) == list(range(16))
        assert fill == [sum(lengths[i] for i in r) for r in rows] and max(fill) <= 256
        naive = first_fit(lengths, 256)
        assert len(rows) <= len(naive)
        ours += max(fill) * len(rows)
        plain += max(naive) * len(naive)
        tokens += sum(lengths)
    assert 1 - tokens / ours < 0.04 and (1 - tokens / plain) > 2 * (1 - tokens / ours)
    # An example longer than the capacity gets a row of its own width.
    rows, fill = pack_rows([300, 10, 20], 256)
    assert max(fill) <= 330 and sorted(i for r in rows for i in r) == [0, 1, 2]
