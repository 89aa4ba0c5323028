"""Tabular classification end to end: pre-training, fine-tuning, the rare-event report and its baselines, the
decision threshold, the time split, reuse of a saved base, resume, predict and serve."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

import tunesmith
from tests.conftest import make_transactions, table_config, write_csv
from tunesmith.errors import DataError, InputError


def _weights_hash(folder: Path) -> str:
    tensors = load_file(str(folder / "model.safetensors"))
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode() + tensors[name].numpy().tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tabular_run(table_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tabular") / "runs"
    cfg = table_config(
        *table_data,
        out,
        eval__fewer_labels=[0.2],
        eval__slice_columns=["online"],
        tabular__pretrain_epochs=12,
        eval__cost={"missed": 50, "false_alarm": 1},
    )
    return tunesmith.finetune(cfg)


def test_the_report_compares_every_baseline_on_the_same_rows(tabular_run):
    report = json.loads((tabular_run.path / "report.json").read_text())
    s = report["summary"]
    assert set(s["baselines"]) == {
        "general model: anomaly score",
        "isolation forest",
        "gradient-boosted trees",
        "logistic regression",
    }
    assert s["n"] == 300 and s["target"] == "yes" and 0 < s["positives"] < 30
    for name, diff in s["tuned_minus"].items():
        ap = diff["average_precision"]
        assert ap["ci_low"] <= ap["difference"] <= ap["ci_high"], name
        assert ap["difference"] == pytest.approx(s["average_precision"] - s["baselines"][name]["average_precision"])
    # The planted rule is learnable: the tuned model finds the positives far better than chance.
    assert s["average_precision"] > 3 * s["positives"] / s["n"] and s["roc_auc"] > 0.8
    assert s["verdict"]["status"] in ("better", "worse", "not measurably better")
    assert "PR-AUC" in s["verdict"]["text"]
    (few,) = s["fewer_labels"]
    assert few["share"] == 0.2 and few["labelled_rows"] < 0.3 * 600 and few["positives"] >= 2
    assert set(few["models"]) >= {"tuned", "gradient-boosted trees", "logistic regression"}
    assert set(report["slices"]["online"]) == {"yes", "no"}
    html = (tabular_run.path / "report.html").read_text()
    for words in ("With fewer labels", "Decision threshold", "isolation forest", "The general model", "Calibration"):
        assert words in html


def test_pre_training_lowers_its_own_loss(tabular_run):
    losses = json.loads((tabular_run.path / "report.json").read_text())["pretraining"]["losses"]
    assert len(losses) >= 3 and min(losses[1:]) < losses[0] - 0.05


def test_the_threshold_has_the_lowest_cost_on_the_selection_split(tabular_run):
    """The saved threshold is the one with the lowest cost over every threshold, recomputed by brute force."""
    from tunesmith.tasks.tabular_classification.task import probabilities

    d = tabular_run.manifest["metrics"]["decision"]
    assert d["chosen_on"] == "the selection split" and d["cost"] == {"missed": 50.0, "false_alarm": 1.0}
    predictor = tunesmith.load(tabular_run.path)
    saved = json.loads((tabular_run.path / "model" / "config.json").read_text())["decision"]
    assert saved["threshold"] == d["threshold"]
    v = d["validation"]
    assert v["true_positives"] + v["missed"] == tabular_run.manifest["metrics"]["positives"]
    assert v["cost"] == 50 * v["missed"] + v["false_positives"] <= d["flag_none_cost"]
    # brute force on the selection split, read again the way the run read it
    from tunesmith import config as cfgmod
    from tunesmith.tasks import get_task

    cfg = cfgmod.load(tabular_run.path / "config.yaml")
    task = get_task(cfg.task)(cfg)
    data = task.read()
    x = predictor.schema.encode(data.select.inputs)
    p = probabilities(predictor.model, x)[:, 1]
    y = np.array([lab == "yes" for lab in data.select.labels])

    def cost(t: float) -> float:
        flag = p >= t
        return 50 * (y & ~flag).sum() + (~y & flag).sum()

    best = min(cost(t) for t in [*p, np.inf])
    assert cost(d["threshold"] if d["threshold"] is not None else np.inf) == best


def test_predict_serve_and_evaluate_new_rows(tabular_run, table_data, tmp_path):
    predictor = tunesmith.load(tabular_run.path)
    risky = {"amount": 400.0, "merchant": "electronics", "hour": 2, "online": "yes", "when": "2024-03-20T02:00"}
    safe = {"amount": 8.0, "merchant": "grocer", "hour": 12, "online": "no", "when": "2024-03-20T12:00"}
    a, b = predictor.predict([risky, safe])
    assert a.probabilities["yes"] > b.probabilities["yes"] and isinstance(a.flagged, bool)
    assert predictor.predict([{**safe, "amount": None}])[0].label in ("yes", "no")  # missing values are imputed
    with pytest.raises(InputError, match="missing column"):
        predictor.predict([{"amount": 3.0}])
    with pytest.raises(InputError, match="holds a list"):
        predictor.predict([{**safe, "merchant": ["a"]}])
    out = tmp_path / "scored.csv"
    assert predictor.predict_file(table_data[1], out) == 300
    header = out.read_text().splitlines()[0]
    assert header.startswith("line,label,score,p_no,p_yes") and "flagged" in header and "anomaly" in header
    metrics = predictor.evaluate_file(table_data[1])
    assert metrics["n"] == 300 and metrics["detection"]["yes"]["average_precision"] == pytest.approx(
        tabular_run.manifest["metrics"]["average_precision"], abs=1e-6
    )


def test_the_server_takes_rows_and_refuses_malformed_ones(tabular_run):
    from fastapi.testclient import TestClient

    from tunesmith import api

    app, _model, token, _ = api.server(tabular_run.path, "127.0.0.1", None, "torch")
    row = {"amount": 40.0, "merchant": "fuel", "hour": 9, "online": "no", "when": "2024-03-02T09:00"}
    with TestClient(app) as client:
        auth = {"Authorization": f"Bearer {token}"}
        ok = client.post("/v1/predict", json={"inputs": [row]}, headers=auth)
        assert ok.status_code == 200, ok.text
        (pred,) = ok.json()["predictions"]
        assert pred["label"] in ("yes", "no") and "flagged" in pred and "anomaly" in pred
        for bad in (["a text"], [{"amount": 1.0}], [{**row, "merchant": {"x": 1}}], [{**row, "merchant": "\ud800"}]):
            body = json.dumps({"inputs": bad})  # ASCII JSON: the lone surrogate travels as an escape
            r = client.post("/v1/predict", content=body, headers={**auth, "Content-Type": "application/json"})
            assert r.status_code == 422, (bad, r.status_code, r.text)
        assert client.post("/v1/predict", json={"inputs": [row]}).status_code == 401


def test_a_later_run_starts_from_the_saved_general_model(tabular_run, tmp_path, cache_dir):
    assert (tabular_run.path / "base_model" / "model.safetensors").is_file()
    new = write_csv(tmp_path / "new.csv", make_transactions(400, 5))
    cfg = table_config(new, None, tmp_path / "runs", model=str(tabular_run.path), tabular__pretrain_epochs=0)
    run = tunesmith.finetune(cfg)
    assert run.manifest["base_model"]["path"] == str((tabular_run.path / "base_model").resolve())
    base = load_file(str(tabular_run.path / "base_model" / "model.safetensors"))
    assert run.manifest["kept"]["model"] in ("fine-tuned", "frozen encoder + head")
    # with no further pre-training the run's own base is the saved one, weight for weight
    again = load_file(str(run.path / "base_model" / "model.safetensors"))
    assert all(np.array_equal(base[k].numpy(), again[k].numpy()) for k in base)
    short = write_csv(
        tmp_path / "short.csv", [{k: v for k, v in r.items() if k != "merchant"} for r in make_transactions(200, 6)]
    )
    with pytest.raises(DataError, match="merchant"):
        tunesmith.finetune(table_config(short, None, tmp_path / "runs2", model=str(tabular_run.path)))


def test_the_time_column_holds_out_the_latest_rows(tmp_path, cache_dir):
    rows = make_transactions(500, 3)
    rows.reverse()  # the file is not in time order; the split must sort
    train = write_csv(tmp_path / "t.csv", rows)
    cfg = table_config(train, None, tmp_path / "runs", data__time_column="when", data__validation_split=0.2)
    report = tunesmith.validate(cfg)
    assert "held out the latest 100 rows by when" in report.stats["split"]
    from tunesmith import config as cfgmod
    from tunesmith.tasks import get_task

    c = cfgmod.from_dict(cfg)
    data = get_task(c.task)(c).read()
    times = lambda ex: [r for r in ex.extras["\x00time"]]  # noqa: E731
    assert max(map(float, times(data.train))) <= min(map(float, times(data.select)))
    assert max(map(float, times(data.select))) <= min(map(float, times(data.val)))
    assert "when" not in data.train.inputs[0]  # the time column is not a feature


def test_a_search_on_a_time_ordered_table_has_its_selection_split(tmp_path, cache_dir):
    from tunesmith import config as cfgmod
    from tunesmith.tuning.study import must_have_selection

    train = write_csv(tmp_path / "t.csv", make_transactions(500, 3))
    cfg = table_config(train, None, tmp_path / "runs", data__time_column="when", data__validation_split=0.2)
    report = tunesmith.validate(cfg)
    assert report.stats["selection_examples"] == 60 and report.no_selection is None  # 15% of the 400 latest-first
    must_have_selection(cfgmod.from_dict(cfg))  # a search ranks on those 60 rows: not refused

    rows = make_transactions(500, 3)
    both = [r for r in rows if r["fraud"] == "yes"][:8] + [r for r in rows if r["fraud"] == "no"][:12]
    small = write_csv(tmp_path / "s.csv", both)  # 16 training rows after the latest 4
    cfg = table_config(small, None, tmp_path / "runs", data__time_column="when", data__validation_split=0.2,
                       data__min_examples=2)  # fmt: skip
    report = tunesmith.validate(cfg)
    assert report.no_selection == "16 training rows are too few to carve a selection split"
    with pytest.raises(InputError, match="16 training rows are too few"):
        must_have_selection(cfgmod.from_dict(cfg))


def test_resume_gives_the_same_model_as_an_uninterrupted_run(table_data, tmp_path, cache_dir):
    def cfg(out: str) -> dict:
        return table_config(
            *table_data,
            tmp_path / out,
            train__epochs=6,
            train__checkpoint_every=5,
            train__eval_every=5,
            train__early_stopping_patience=0,
        )

    whole = tunesmith.finetune(cfg("whole"))

    def stop(record: dict) -> bool:
        if record["step"] >= 15:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        tunesmith.finetune(cfg("cut"), on_eval=stop)
    (cut,) = (tmp_path / "cut").iterdir()
    assert list((cut / "checkpoints").glob("ckpt-*")), "the interrupted run left checkpoints"
    resumed = tunesmith.finetune(cfg("cut"), resume=cut)
    assert resumed.manifest["fit"]["resumed_from"]
    assert _weights_hash(resumed.path / "model") == _weights_hash(whole.path / "model")


def test_training_on_a_table_prints_the_comparison(table_data, tmp_path, cache_dir, capsys):
    from tunesmith.cli import main

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(table_config(*table_data, tmp_path / "runs")))
    assert main(["train", str(path)]) == 0
    err = capsys.readouterr()
    text = err.out + err.err
    for words in ("PR-AUC", "gradient-boosted trees", "isolation forest", "recall@1%", "threshold"):
        assert words in text


def test_a_tabular_version_is_registered_and_updated_through_the_gate(tabular_run, tmp_path, cache_dir):
    from tunesmith.lifecycle.update import update
    from tunesmith.store import ModelStore

    store = ModelStore(tmp_path / "store")
    store.register(tabular_run.path, "fraud")
    store.promote("fraud@v1", "prod")
    new = write_csv(tmp_path / "march.csv", make_transactions(300, 21))
    result = update(
        "fraud@prod", new, replay_ratio=1.0, max_regression=50.0, store=store, overrides=["tabular.pretrain_epochs=2"]
    )
    assert result.metric == "loss" and {c.eval_set for c in result.comparisons} == {"fraud@v1", "new data"}
    assert "replayed" in result.replay
    assert store.lineage(result.version) == [result.version, "fraud@v1"]
    assert result.passed == (store.version("fraud@prod")["version"] == 2)


def test_a_registered_version_is_a_model_to_start_from(tabular_run, tmp_path, cache_dir, monkeypatch):
    from tunesmith.store import ModelStore

    monkeypatch.setenv("TUNESMITH_STORE", str(tmp_path / "store"))
    store = ModelStore(tmp_path / "store")
    store.register(tabular_run.path, "fraud")
    store.promote("fraud@v1", "prod")
    new = write_csv(tmp_path / "new.csv", make_transactions(300, 8))
    run = tunesmith.finetune(table_config(new, None, tmp_path / "runs", model="fraud@prod", tabular__pretrain_epochs=0))
    used = Path(run.manifest["base_model"]["path"])
    assert used.name == "base_model" and used.parent == store.run_dir("fraud@prod").resolve()
    with pytest.raises(InputError, match="fraud@v9"):
        tunesmith.finetune(table_config(new, None, tmp_path / "runs", model="fraud@v9"))


def test_three_classes_from_typed_json_lines(tmp_path, cache_dir):
    """JSON lines keep their types (numbers, booleans, null); three classes give macro figures and no threshold,
    and the rare-event figures are about the rarest class."""
    rows = []
    for i, r in enumerate(make_transactions(450, 31)):
        amount = r["amount"] if r["amount"] != "" else None
        kind = "refund" if i % 9 == 0 else ("fraud" if r["fraud"] == "yes" or i % 7 == 0 else "ok")
        rows.append(
            {
                "amount": amount,
                "merchant": r["merchant"],
                "hour": r["hour"],
                "online": r["online"] == "yes",
                "kind": kind,
            }
        )
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = table_config(path, None, tmp_path / "runs", data__label_column="kind")
    run = tunesmith.finetune(cfg)
    m = run.manifest["metrics"]
    assert m["target"] == "refund" and "decision" not in m
    assert run.manifest["columns"] == {
        "amount": "numeric",
        "merchant": "categorical",
        "hour": "numeric",
        "online": "boolean",
    }
    preds = tunesmith.load(run.path).predict([{"amount": 5.0, "merchant": "fuel", "hour": 3, "online": True}])
    assert set(preds[0].probabilities) == {"ok", "fraud", "refund"} and preds[0].flagged is None
