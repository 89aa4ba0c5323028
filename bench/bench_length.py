"""What a shorter max length loses, measured cheaply on frozen features: for each text set of the recipe suite, a
linear probe on MiniLM's mean-pooled features of the first N tokens, for several N, with the encoding time.

    python bench/bench_length.py                       # every text set of the suite
    python bench/bench_length.py --only python-docs --lengths 32,64,128,256

The default length cap of text classification (DEFAULT_LENGTH_CAP) is chosen from this table (docs/defaults.md).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="data/suite")
    p.add_argument("--only", default="")
    p.add_argument("--lengths", default="32,64,128,256")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()

    import torch
    from transformers import AutoModel, AutoTokenizer

    from tunesmith.data.readers import read_table
    from tunesmith.eval.compare import linear_probe
    from tunesmith.examples import SUITE
    from tunesmith.models.catalog import resolve
    from tunesmith.models.pooled import pool

    torch.set_num_threads(a.threads)
    folder = resolve("minilm-l6").path
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    lengths = [int(x) for x in a.lengths.split(",")]
    names = [n for n in a.only.split(",") if n] or [n for n, (kind, _, _) in SUITE.items() if kind == "text"]

    def features(texts: list[str], length: int) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, len(texts), 32):
                enc = tok(texts[s : s + 32], truncation=True, max_length=length, padding=True, return_tensors="pt")
                hidden = model(**enc).last_hidden_state
                out.append(pool(hidden, enc["attention_mask"], "mean").numpy())
        return np.concatenate(out)

    print("| dataset | p98 tokens | " + " | ".join(f"probe @ {n}" for n in lengths) + " | encode s @ each |")
    print("|---" * (3 + len(lengths)) + "|")
    for name in names:
        train = read_table(f"{a.suite}/{name}/train.csv").rows
        val = read_table(f"{a.suite}/{name}/validation.csv").rows
        labels = sorted({r["label"] for r in train})
        y_tr = np.array([labels.index(r["label"]) for r in train])
        y_va = np.array([labels.index(r["label"]) if r["label"] in labels else -1 for r in val])
        full = [len(ids) for ids in tok([r["text"] for r in train])["input_ids"]]
        accs, secs = [], []
        for n in lengths:
            t = time.perf_counter()
            x_tr, x_va = features([r["text"] for r in train], n), features([r["text"] for r in val], n)
            secs.append(time.perf_counter() - t)
            probs, _ = linear_probe(x_tr, y_tr, x_va, seed=0)
            accs.append(float((probs.argmax(1) == y_va).mean()))
        cells = " | ".join(f"{100 * x:.1f}" for x in accs)
        print(f"| {name} | {int(np.percentile(full, 98))} | {cells} | {' / '.join(f'{s:.0f}' for s in secs)} |")


if __name__ == "__main__":
    main()
