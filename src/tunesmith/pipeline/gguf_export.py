"""GGUF export of a causal-LM run, for llama.cpp and Ollama: ``RUN/gguf/model.gguf`` and an Ollama ``Modelfile``.

The weights are the run's full weights (a LoRA run is merged first, through the merge's own parity check), written
with the ``gguf`` package's writer in llama.cpp's layout: tensor names mapped, the query and key projections
permuted into llama.cpp's rotary order, norms kept in f32, matrices in f32, f16 or q8_0. The tokenizer
(byte-level BPE: tokens, types, merges, special ids) and the chat template go inside the file, so llama.cpp and
Ollama format chats as training did. After writing, the file is read back with transformers' own GGUF loader and
its greedy answers to the run's held-out prompts are compared with the merged model's; the agreement is recorded
in the manifest. Architectures the mapping does not cover are refused before anything is written.

llama.cpp's converter (convert_hf_to_gguf.py) is a script in its repository, not a package, so the mapping for
the architecture tunesmith's catalog serves (Llama: SmolLM2, TinyLlama, Llama 2/3) is written here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import InputError
from tunesmith.files import write_json
from tunesmith.pipeline.export import merge_adapter
from tunesmith.rundir import read_manifest

QUANTS = ("f16", "q8_0", "f32")
ARCHITECTURES = {"llama": "llama", "mistral": "llama"}  # HF model_type -> llama.cpp architecture
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
TOP_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}  # fmt: skip
CHATML_MODELFILE_TEMPLATE = (
    "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt }}<|im_start|>user\n"
    "{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
)


def export_gguf(run_dir: str | Path, quant: str = "f16", check_prompts: int = 8) -> dict[str, Any]:
    """Write ``RUN/gguf/model.gguf`` and ``RUN/gguf/Modelfile``; returns (and records as the manifest's ``gguf``)
    the file, its size, the quantisation and the read-back agreement."""
    run = Path(run_dir)
    if quant not in QUANTS:
        raise InputError(f"--quant {quant}: allowed: {', '.join(QUANTS)}")
    manifest = read_manifest(run)
    if manifest.get("task") != "causal-lm":
        raise InputError(f"{run}: GGUF export is for causal-lm runs; this run is {manifest.get('task')}")
    config = _model_config(run, manifest)
    arch = ARCHITECTURES.get(config.get("model_type", ""))
    if arch is None:
        raise InputError(
            f"{run}: GGUF export maps Llama-architecture models ({', '.join(ARCHITECTURES)}); this model is "
            f"{config.get('model_type')!r}, which the writer does not map"
        )
    folder = merge_adapter(run) if manifest["export"].get("adapter") else run / manifest["export"]["path"]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    vocab = _vocabulary(folder, tokenizer, config)
    out = run / "gguf"
    tmp = run / ".gguf.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write(tmp / "model.gguf", arch, config, _weights(folder), vocab, tokenizer, quant, manifest)
        (tmp / "Modelfile").write_text(modelfile(tokenizer), encoding="utf-8")
        agreement = _read_back(tmp, folder, tokenizer, run, check_prompts)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info = {"file": "gguf/model.gguf", "modelfile": "gguf/Modelfile", "quant": quant, "architecture": arch,
            "size_mb": round((out / "model.gguf").stat().st_size / 1e6, 2), **agreement}  # fmt: skip
    manifest = read_manifest(run)  # the merge may have updated it
    manifest["gguf"] = info
    write_json(run / "manifest.json", manifest)
    return info


def _model_config(run: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    export = manifest["export"]
    if export.get("path"):
        return json.loads((run / export["path"] / "config.json").read_text(encoding="utf-8"))
    from tunesmith.inference.weights import base_model_path

    base = Path(base_model_path(manifest))
    return json.loads((base / "config.json").read_text(encoding="utf-8")) if base.is_dir() else {}


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors |= {k: v.astype(np.float32) for k, v in load_file(str(shard)).items()}
    return tensors


def _vocabulary(folder: Path, tokenizer: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Tokens by id, their llama.cpp types and the BPE merges, from tokenizer.json (byte-level BPE only)."""
    import gguf

    spec = (
        json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        if (folder / "tokenizer.json").is_file()
        else {}
    )
    model = spec.get("model", {})
    if model.get("type") != "BPE" or "ByteLevel" not in json.dumps(spec.get("pre_tokenizer")):
        raise InputError(f"{folder}: GGUF export maps byte-level BPE tokenizers (GPT-2 style); this one is "
                         f"{model.get('type') or 'not a tokenizer.json'}")  # fmt: skip
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    size = max(int(config.get("vocab_size", 0)), max(by_id) + 1)
    special = set(tokenizer.all_special_ids)
    added = {a["id"] for a in spec.get("added_tokens", [])}
    tokens, types = [], []
    for i in range(size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.USER_DEFINED if i in added
                     else gguf.TokenType.NORMAL)  # fmt: skip
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return {"tokens": tokens, "types": types, "merges": merges}


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's rotary layout of a query or key projection -> llama.cpp's (interleaved halves)."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _write(path: Path, arch: str, config: dict[str, Any], tensors: dict[str, np.ndarray], vocab: dict[str, Any],
           tokenizer: Any, quant: str, manifest: dict[str, Any]) -> None:  # fmt: skip
    import gguf

    heads, kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    hidden = config["hidden_size"]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"tunesmith {manifest.get('base_model', {}).get('spec', 'model')} ({manifest.get('method')})")
    w.add_context_length(config.get("max_position_embeddings", 2048))
    w.add_embedding_length(hidden)
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(config.get("head_dim") or hidden // heads)
    w.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    w.add_rope_freq_base(_rope_theta(config))
    w.add_vocab_size(len(vocab["tokens"]))
    w.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                     "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant])  # fmt: skip
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(vocab["tokens"])
    w.add_token_types(vocab["types"])
    w.add_token_merges(vocab["merges"])
    for key, adder in (("bos_token_id", w.add_bos_token_id), ("eos_token_id", w.add_eos_token_id),
                       ("pad_token_id", w.add_pad_token_id), ("unk_token_id", w.add_unk_token_id)):  # fmt: skip
        value = getattr(tokenizer, key, None)
        if value is not None:
            adder(value)
    w.add_add_bos_token(False)
    if getattr(tokenizer, "chat_template", None):
        w.add_chat_template(tokenizer.chat_template)
    tied = config.get("tie_word_embeddings", False)
    for name, data in _mapped(tensors, config["num_hidden_layers"], heads, kv, tied):
        _add(w, name, data, quant)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _rope_theta(config: dict[str, Any]) -> float:
    """The rotary base, wherever this transformers version keeps it; scaled rotary embeddings are not mapped."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    kind = rope.get("rope_type") or rope.get("type") or "default"
    if kind != "default":
        raise InputError(f"GGUF export: rotary scaling {kind!r} is not mapped by the writer; refused")
    return float(config.get("rope_theta") or rope.get("rope_theta") or 10000.0)


def _mapped(tensors: dict[str, np.ndarray], layers: int, heads: int, kv: int, tied: bool) -> Any:
    names = dict(TOP_TENSORS)
    for i in range(layers):
        names |= {f"model.layers.{i}.{hf}": f"blk.{i}.{g}" for hf, g in LAYER_TENSORS.items()}
    unknown = sorted(set(tensors) - set(names) - {k for k in tensors if k.endswith("rotary_emb.inv_freq")})
    if unknown:
        raise InputError(f"GGUF export: tensors the writer does not map ({', '.join(unknown[:5])}); refused")
    for hf, name in names.items():
        if hf not in tensors or (hf == "lm_head.weight" and tied):
            continue
        data = tensors[hf]
        if hf.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif hf.endswith("k_proj.weight"):
            data = _permute(data, kv)
        yield name, data


def _add(w: Any, name: str, data: np.ndarray, quant: str) -> None:
    import gguf

    if data.ndim == 1 or quant == "f32":  # norms stay f32, as llama.cpp keeps them
        w.add_tensor(name, data.astype(np.float32))
    elif quant == "q8_0" and data.shape[-1] % 32 == 0:
        q = gguf.quants.quantize(data.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    else:
        w.add_tensor(name, data.astype(np.float16))


def modelfile(tokenizer: Any) -> str:
    """Ollama's Modelfile: the weights beside it, the chat format (ChatML written out; other templates are read
    by Ollama from the file's own chat template) and the end-of-turn stops."""
    from tunesmith.tasks.causal_lm.decoding import END_OF_TURN

    vocab = tokenizer.get_vocab()
    lines = ["# Ollama: ollama create NAME -f Modelfile, then ollama run NAME", "FROM ./model.gguf", ""]
    if "<|im_start|>" in (getattr(tokenizer, "chat_template", None) or ""):
        lines += [f'TEMPLATE """{CHATML_MODELFILE_TEMPLATE}"""', ""]
    lines += [f'PARAMETER stop "{t}"' for t in END_OF_TURN if t in vocab]
    lines += ["PARAMETER temperature 0", ""]
    return "\n".join(lines)


def _read_back(tmp: Path, folder: Path, tok: Any, run: Path, limit: int) -> dict[str, Any]:
    """The written file loaded by transformers' GGUF reader: greedy answers to the run's held-out prompts, compared
    token for token with the merged model's."""
    import contextlib
    import io

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.files import read_jsonl
    from tunesmith.tasks.causal_lm.decoding import generate_ids
    from tunesmith.tasks.causal_lm.rendering import prompt_ids

    golden = run / "validation_generations.jsonl"
    prompts = [r["prompt"] for r in read_jsonl(golden)[:limit]] if golden.is_file() else []
    if not prompts:
        return {"read_back": "loaded", "prompts": 0}
    with contextlib.redirect_stderr(io.StringIO()):
        gguf_model = AutoModelForCausalLM.from_pretrained(str(tmp), gguf_file="model.gguf", dtype=torch.float32)
        gguf_tok = AutoTokenizer.from_pretrained(str(tmp), gguf_file="model.gguf")
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True)
    ids = [prompt_ids(tok, p) for p in prompts]
    same_tokens = sum(prompt_ids(gguf_tok, p) == i for p, i in zip(prompts, ids))
    want = generate_ids(merged, tok, ids, max_new_tokens=24)
    got = generate_ids(gguf_model, tok, ids, max_new_tokens=24)
    same = sum(a == b for a, b in zip(want, got))
    with torch.inference_mode():  # every position's next-token log-probabilities, not only the argmax
        gap = max(
            float((torch.log_softmax(gguf_model(torch.tensor([i])).logits, -1)
                   - torch.log_softmax(merged(torch.tensor([i])).logits, -1)).abs().max())
            for i in ids
        )  # fmt: skip
    return {"read_back": "transformers", "prompts": len(prompts), "identical_greedy_outputs": same,
            "identical_prompt_tokens": same_tokens, "max_logprob_difference": round(gap, 5)}  # fmt: skip
