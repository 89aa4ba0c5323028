"""task: embedding on the tiny BERT: the run, its report and folder, the loss's masks and mined negatives, keeping
the pre-trained encoder when tuning does not beat it, and a tuned encoder rebuilding a knowledge base."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import tunesmith
from tests.conftest import pair_config
from tunesmith import api
from tunesmith.methods.training import keep_untouched
from tunesmith.tasks.embedding.task import make_collate, mine_negatives
from tunesmith.train.result import FitResult


@pytest.fixture(scope="module")
def emb_run(tiny_model: Path, pair_data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("emb")
    cfg = pair_config(tiny_model, *pair_data, out / "runs", train__epochs=2, classifier__keep_better=False)
    return tunesmith.finetune(cfg).path


def test_the_run_reports_both_encoders_on_the_same_queries(emb_run: Path, pair_data: tuple[Path, Path]) -> None:
    m = json.loads((emb_run / "manifest.json").read_text())
    s = m["metrics"]
    n_val = len(pair_data[1].read_text().splitlines())
    assert s["n"] == n_val and s["corpus"] == 160  # every distinct passage of the three splits
    for name in ("base", "tuned"):
        assert all(0.0 <= s[name][k] <= 1.0 for k in ("recall_at_1", "recall_at_5", "mrr_at_10", "ndcg_at_10"))
        assert s[name]["recall_at_1"] <= s[name]["recall_at_5"] <= s[name]["recall_at_10"]
    assert s["verdict"]["text"].split(" the general encoder")[0] in ("Better than", "Worse than",
                                                                       "Not measurably better than")  # fmt: skip
    rankings = [json.loads(x) for x in (emb_run / "validation_rankings.jsonl").read_text().splitlines()]
    assert len(rankings) == n_val and all(len(r["tuned"]) == 5 for r in rankings)
    rr = np.mean([r["rr_tuned"] for r in rankings])
    assert abs(rr - s["tuned"]["mrr_at_10"]) < 1e-9
    html = (emb_run / "report.html").read_text()
    assert "General vs tuned encoder" in html and "recall@5" in html
    folder = emb_run / "model"
    modules = json.loads((folder / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True


def test_the_predictor_embeds_predicts_files_and_evaluates(emb_run: Path, pair_data: tuple[Path, Path],
                                                          tmp_path: Path) -> None:  # fmt: skip
    model = tunesmith.load(emb_run)
    v = model.encode(["great 3", "great 3", "dull 9"])
    assert np.allclose(v[0], v[1]) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert len(model.predict(["great 3"])[0].embedding) == 32
    (tmp_path / "in.csv").write_text("text,id\ngreat 3,a\ndull 9,b\n")
    assert model.predict_file(tmp_path / "in.csv", tmp_path / "out.jsonl") == 2
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows[1]["id"] == "b" and np.allclose(rows[1]["embedding"], v[2], atol=1e-5)
    ev = model.evaluate_file(pair_data[1])
    assert ev["n"] == len(pair_data[1].read_text().splitlines()) and 0 <= ev["mrr_at_10"] <= 1
    assert model.example_scores(model._pairs(pair_data[1])).shape == (ev["n"],)
    lo, hi = ev["intervals"]["mrr_at_10"]
    assert lo <= ev["mrr_at_10"] <= hi


def test_eval_prints_the_retrieval_figures(emb_run: Path, pair_data: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    from tunesmith.cli import main

    assert main(["eval", str(emb_run), "--data", str(pair_data[1])]) == 0
    out = capsys.readouterr().out
    assert "queries searching" in out and "MRR@10" in out and "95% CI" in out


def test_a_tuned_encoder_rebuilds_a_knowledge_base(emb_run: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("TUNESMITH_KNOWLEDGE", str(tmp_path / "kb"))
    (tmp_path / "a.md").write_text("# great\n\ngreat moving film 3\n\n# dull\n\ndull boring plot 9\n")
    built = api.kb_build([str(tmp_path / "a.md")], "toy", encoder=str(emb_run))
    assert built.chunks == 2
    hits = api.kb_search("toy", ["great 3"], 2)[0]
    assert len(hits) == 2 and hits[0].score >= hits[1].score


def test_shared_passages_are_not_negatives_and_mined_ones_are_not_own() -> None:
    collate = make_collate(0)
    items = [{"q": np.array([5, 6]), "p": np.array([7, 8, 9]), "key": k, "neg": n}
             for k, n in ((0, [(2, np.array([1]))]), (0, []), (1, []))]  # fmt: skip
    batch = collate(items)
    # Passages: item 0's, 1's, 2's, then item 0's mined negative (key 2). Items 0 and 1 share passage 0.
    assert batch["shared"].tolist() == [
        [False, True, False, False],
        [True, False, False, False],
        [False, False, False, False],
    ]
    assert int(batch["real_tokens"]) == 6 + 9 + 1 and int(batch["positions"]) == 6 + 4 * 3

    corpus = np.eye(4, dtype=np.float32)
    prep = SimpleNamespace(
        train_items=[{"q": np.array([1]), "key": 0, "neg": []}, {"q": np.array([1]), "key": 1, "neg": []}],
        pad_id=0, pooling="mean", corpus_ids=[np.array([i]) for i in range(4)],
    )  # fmt: skip

    class Model:  # a query's embedding is the first two corpus directions: passages 0 and 1 rank highest
        config = SimpleNamespace(hidden_size=4)
        training = False

        def eval(self) -> None: ...

        def train(self, mode: bool = True) -> None: ...

    import tunesmith.tasks.embedding.task as t

    original = t.encode_ids
    t.encode_ids = lambda model, ids, pad, how: np.tile([0.7, 0.6, 0.3, 0.1], (len(ids), 1)).astype(np.float32)
    try:
        mine_negatives(Model(), prep, corpus, 1)
    finally:
        t.encode_ids = original
    # The same query text is paired with passages 0 and 1: neither is its negative; passage 2 is next.
    assert [[k for k, _ in it["neg"]] for it in prep.train_items] == [[2], [2]]


def test_the_pretrained_encoder_is_kept_when_tuning_loses_on_the_selection_split() -> None:
    cfg = SimpleNamespace(train=SimpleNamespace(metric="mrr_at_10"), classifier=SimpleNamespace(keep_better=True))
    job = SimpleNamespace(cfg=cfg, untouched={"mrr_at_10": 0.9, "loss": 1.0}, rebuild=lambda: "pre-trained",
                          model="tuned", kept=None, judge=None, no_choice=None)  # fmt: skip
    tuned = FitResult(best={"mrr_at_10": 0.5, "loss": 2.0})
    keep_untouched(job, tuned)
    assert job.model == "pre-trained" and job.kept["model"] == "pre-trained model" and tuned.kept == job.kept
    assert "did not beat the pre-trained model as it is" in job.kept["why"]
    job.model, job.kept = "tuned", None
    keep_untouched(job, FitResult(best={"mrr_at_10": 0.95, "loss": 0.5}))
    assert job.model == "tuned" and job.kept["model"] == "fine-tuned"


def test_served_at_the_openai_embeddings_route(emb_run: Path) -> None:
    from fastapi.testclient import TestClient

    from tunesmith.serve import ServeSettings, create_app

    model = tunesmith.load(emb_run)
    client = TestClient(create_app(model, "enc@v1", ServeSettings(token="k" * 32)))
    auth = {"Authorization": "Bearer " + "k" * 32}
    r = client.post("/v1/embeddings", json={"model": "enc@v1", "input": ["great 3", "dull 9"]}, headers=auth)
    body = r.json()
    assert r.status_code == 200 and [d["index"] for d in body["data"]] == [0, 1]
    assert np.allclose(body["data"][0]["embedding"], model.encode(["great 3"])[0], atol=1e-5)
    assert body["usage"]["prompt_tokens"] == sum(len(x) for x in model.ids(["great 3", "dull 9"]))
    one = client.post("/v1/embeddings", json={"model": "enc@v1", "input": "great 3"}, headers=auth).json()
    assert len(one["data"]) == 1
    for bad, status in (({"model": "other", "input": "x"}, 404), ({"model": "enc@v1", "input": []}, 400),
                        ({"model": "enc@v1", "input": "x", "dimensions": 8}, 400),
                        ({"model": "enc@v1", "input": 5}, 400), ({"model": "enc@v1"}, 400)):  # fmt: skip
        assert client.post("/v1/embeddings", json=bad, headers=auth).status_code == status, bad
    assert client.post("/v1/embeddings", json={"model": "enc@v1", "input": "x"}).status_code == 401
