"""Shared fixtures: a tiny random-weight BERT (hidden 32, 2 layers) and a small learnable dataset."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TUNESMITH_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

POSITIVE = ["great", "superb", "moving", "brilliant", "charming", "fresh", "delightful", "gripping"]
NEGATIVE = ["dull", "awful", "boring", "clumsy", "tedious", "stale", "lifeless", "messy"]
NEUTRAL = ["the", "film", "movie", "plot", "cast", "story", "was", "and", "a", "with", "script", "actors"]


def make_rows(n: int, seed: int) -> list[dict[str, str]]:
    """Texts whose label is decided by which word list dominates; a little noise keeps it honest."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        strong = POSITIVE if label == "pos" else NEGATIVE
        words = list(rng.choice(NEUTRAL, size=rng.integers(3, 9))) + list(rng.choice(strong, size=2))
        rng.shuffle(words)
        rows.append({"text": " ".join(words) + f" {i}", "label": label, "group": "a" if i % 3 else "b"})
    return rows


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a WordPiece vocabulary of the toy words."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *NEUTRAL]
    vocab += [str(i) for i in range(10)] + [f"##{i}" for i in range(10)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.model_max_length = 128
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=0.15,
    )
    BertModel(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("toy-data")
    rows = make_rows(320, seed=1)
    return write_csv(folder / "train.csv", rows[:240]), write_csv(folder / "validation.csv", rows[240:])


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("TUNESMITH_CACHE", str(path))
    return path


def with_overrides(cfg: dict, overrides: dict[str, object]) -> dict:
    """``section__key=value`` keyword overrides set into a config mapping (sections made as needed)."""
    for key, value in overrides.items():
        node = cfg
        parts = key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return cfg


def tiny_config(model: Path, train: Path, validation: Path | None, out: Path, **overrides: object) -> dict:
    cfg: dict = {
        "task": "text-classification",
        "model": str(model),
        "method": "full",
        "output_dir": str(out),
        "data": {"train": str(train), "validation": str(validation) if validation else None},
        "train": {"epochs": 4, "batch_size": 16, "learning_rate": 3e-3, "max_length": 32, "seed": 7, "threads": 1},
        "eval": {"bootstrap": 200},
    }
    return with_overrides(cfg, overrides)


# --- causal LM: a tiny random Llama with a byte-level BPE tokenizer and a ChatML chat template ---------------
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
    " + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
ANIMALS = {"cat": "meow", "dog": "woof", "cow": "moo", "duck": "quack", "sheep": "baa", "owl": "hoot"}
COLOURS = {"sky": "blue", "grass": "green", "snow": "white", "coal": "black", "blood": "red", "sun": "yellow"}


def make_chats(n: int, seed: int) -> list[dict]:
    """Two question kinds with fixed answers: learnable by a tiny model, unknown to a random one."""
    rng = np.random.default_rng(seed)
    chats = []
    for i in range(n):
        if i % 2:
            a = list(ANIMALS)[rng.integers(len(ANIMALS))]
            q, ans = f"What does a {a} say? ({i})", f"A {a} says {ANIMALS[a]}."
        else:
            c = list(COLOURS)[rng.integers(len(COLOURS))]
            q, ans = f"What colour is the {c}? ({i})", f"The {c} is {COLOURS[c]}."
        msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]
        if i % 5 == 0:
            msgs.insert(0, {"role": "system", "content": "Answer briefly."})
        chats.append({"messages": msgs})
    return chats


def write_jsonl(path: Path, rows: list) -> Path:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide Llama with random weights; its tokenizer is a byte-level BPE trained on the toy chats."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [m["content"] for c in make_chats(200, 0) for m in c["messages"]] + ["user", "assistant", "system"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    tok.chat_template = CHATML
    tok.model_max_length = 256
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def chat_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("chat-data")
    chats = make_chats(200, seed=3)
    return write_jsonl(folder / "train.jsonl", chats[:160]), write_jsonl(folder / "validation.jsonl", chats[160:])


def llm_config(model: Path, train: Path, validation: Path | None, out: Path, **overrides: object) -> dict:
    base = tiny_config(model, train, validation, out, **overrides)
    base["task"] = "causal-lm"
    base["method"] = overrides.get("method", "lora")
    base["train"] = {
        "epochs": 3,
        "batch_size": 16,
        "learning_rate": 1e-2,
        "seed": 7,
        "threads": 1,
        **{k.split("__", 1)[1]: v for k, v in overrides.items() if k.startswith("train__")},
    }
    base["eval"] = {"bootstrap": 200, "generate_examples": 8, "max_new_tokens": 16}
    base["eval"].update({k.split("__", 1)[1]: v for k, v in overrides.items() if k.startswith("eval__")})
    return base


# --- images: small synthetic photos, a tiny ResNet and a tiny ViT (random weights, Hugging Face format) ------------
COLOURS_RGB = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}


def make_image(label: str, seed: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """A noisy picture whose dominant colour is its class, with a random darker block so no two are alike."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.array(COLOURS_RGB[label], dtype=float) + rng.normal(0, 30, size=(h, w, 3))
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    img[y : y + h // 3, x : x + w // 3] *= 0.5
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image_folder(root: Path, per_class: int, seed: int) -> Path:
    from PIL import Image

    for k, label in enumerate(COLOURS_RGB):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make_image(label, seed * 1000 + k * 100 + i)).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def image_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("images")
    return write_image_folder(folder / "train", 30, 1), write_image_folder(folder / "validation", 10, 2)


def _save_processor(folder: Path, size: int) -> None:
    from transformers import ViTImageProcessor

    ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
        folder
    )


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(0)
    cfg = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=2,
    )  # fmt: skip
    ViTForImageClassification(cfg).save_pretrained(folder, safe_serialization=True)
    _save_processor(folder, 32)
    return folder


@pytest.fixture(scope="session")
def tiny_resnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    folder = tmp_path_factory.mktemp("tiny-resnet")
    torch.manual_seed(0)
    cfg = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=2)
    ResNetForImageClassification(cfg).save_pretrained(folder, safe_serialization=True)
    _save_processor(folder, 32)
    return folder


def image_config(model: Path | str, train: Path, validation: Path | None, out: Path, **overrides: object) -> dict:
    cfg = tiny_config(Path(model) if not isinstance(model, str) else model, train, validation, out, **overrides)
    cfg["task"] = "image-classification"
    cfg["model"] = str(model)
    cfg["train"] = {"epochs": 15, "batch_size": 16, "learning_rate": 3e-3, "seed": 7, "threads": 1}
    for key, value in overrides.items():
        if key.startswith("train__"):
            cfg["train"][key.split("__", 1)[1]] = value
    return cfg


def fatal_problems(cfg: Path, runs: Path, cache_dir: Path, capsys: pytest.CaptureFixture) -> list:
    """``validate`` and ``train`` both exit 2 saying nothing was written, and nothing was (no run directory, no
    cache); returns the problems api.validate raises."""
    from tunesmith import api
    from tunesmith.cli import main
    from tunesmith.errors import DataError

    for cmd in ("validate", "train"):
        assert main([cmd, str(cfg)]) == 2
        assert "nothing was written" in capsys.readouterr().err
    assert not runs.exists(), "no run directory on a fatal problem"
    assert not cache_dir.exists(), "no cache on a fatal problem"
    with pytest.raises(DataError) as exc:
        api.validate(cfg)
    return exc.value.problems


def problems_named(problems: list, check: str) -> list:
    found = [p for p in problems if p.check == check]
    assert found, f"expected a {check} problem, got {[p.check for p in problems]}"
    return found


# --- tables: a fraud-like table (rare positives decided by amount, hour and merchant, with noise) ------------
MERCHANTS = ["grocer", "fuel", "travel", "online-shop", "pharmacy", "electronics"]


def make_transactions(n: int, seed: int, start: int = 0, unlabelled: int = 0) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        merchant = MERCHANTS[int(rng.integers(0, len(MERCHANTS)))]
        amount = float(np.round(rng.lognormal(3.5, 1.0), 2))
        hour = int(rng.integers(0, 24))
        online = bool(rng.random() < 0.4)
        risk = (amount > 120) + (hour < 5) + (merchant in ("electronics", "travel")) + online * 0.5
        fraud = risk + rng.normal(0, 0.4) > 2.3
        day = 1 + (start + i) * 27 // max(n + start, 1)
        rows.append({
            "amount": "" if rng.random() < 0.03 else amount,
            "merchant": merchant,
            "hour": hour,
            "online": "yes" if online else "no",
            "when": f"2024-03-{day:02d}T{hour:02d}:{int(rng.integers(0, 60)):02d}",
            "fraud": "" if i < unlabelled else ("yes" if fraud else "no"),
        })  # fmt: skip
    return rows


@pytest.fixture(scope="session")
def table_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("table")
    return write_csv(d / "train.csv", make_transactions(700, 1, unlabelled=100)), write_csv(
        d / "validation.csv", make_transactions(300, 2)
    )


def table_config(train: Path, validation: Path | None, out: Path, **overrides: object) -> dict:
    """A small tabular network, briefly pre-trained; overrides as in tiny_config (``tabular__width=16``)."""
    cfg: dict = {
        "task": "tabular-classification",
        "output_dir": str(out),
        "data": {"train": str(train), "validation": str(validation) if validation else None, "label_column": "fraud"},
        "train": {"seed": 7, "threads": 1},
        "eval": {"bootstrap": 200, "fewer_labels": [], "top_k": 20},
        "tabular": {"width": 32, "depth": 2, "pretrain_epochs": 3},
    }
    return with_overrides(cfg, overrides)


# --- embedding: (query, passage) pairs in the toy vocabulary --------------------------------------------------
def make_pairs(n: int, seed: int) -> list[dict[str, str]]:
    """Each passage names a number and a few words; its query repeats the number and one of the words."""
    rng = np.random.default_rng(seed)
    words = POSITIVE + NEGATIVE
    rows = []
    for i in range(n):
        picked = list(rng.choice(words, size=3, replace=False))
        passage = " ".join([*picked, *rng.choice(NEUTRAL, size=4), str(i)])
        rows.append({"query": f"{picked[0]} {i}", "passage": passage})
    return rows


@pytest.fixture(scope="session")
def pair_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("pairs")
    rows = make_pairs(160, 3)
    return write_jsonl(d / "train.jsonl", rows[:120]), write_jsonl(d / "validation.jsonl", rows[120:])


def pair_config(model: Path, train: Path, validation: Path | None, out: Path, **overrides: object) -> dict:
    cfg = tiny_config(model, train, validation, out)
    cfg["task"] = "embedding"
    cfg["train"].pop("max_length")
    return with_overrides(cfg, overrides)
