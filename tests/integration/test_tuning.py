"""Search on a tiny model: it beats a bad default, prunes a bad trial, resumes an interrupted study."""

from __future__ import annotations

import csv
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import tiny_config
from tunesmith import api, config
from tunesmith.cli import main
from tunesmith.pipeline import finetune as pipeline
from tunesmith.train.loop import Interrupted
from tunesmith.tuning.seeds import run_seeds
from tunesmith.tuning.study import tune

# The learning rate of fine-tuning is what these searches are about: fine-tuning starts from a fresh head and the
# run keeps the fine-tuned model (a warm-started head would score well at any rate).
FINE_TUNED = {"full__warm_start_head": False, "classifier__keep_better": False}


def search_file(tmp_path: Path, tiny_model, toy_data, lr: str, **overrides) -> Path:
    raw = tiny_config(tiny_model, *toy_data, tmp_path / "runs", **FINE_TUNED, **overrides)
    raw["train"]["learning_rate"] = lr
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_search_finds_a_better_learning_rate_than_a_bad_default(tiny_model, toy_data, tmp_path, cache_dir):
    bad = api.finetune(tiny_config(tiny_model, *toy_data, tmp_path / "bad", train__learning_rate=1e-6, **FINE_TUNED))
    bad_f1 = bad.metrics["macro_f1"]
    path = search_file(tmp_path, tiny_model, toy_data, "loguniform(1e-3, 3e-2)", train__epochs=3)
    result = tune(path, trials=4, pruner="none")
    assert result.ran == 4 and len(result.trials) == 4
    assert all(t["state"] == "complete" for t in result.trials)
    assert result.best["value"] > bad_f1 + 0.2, (result.best, bad_f1)
    # the best config is a file train accepts, with the best value in it
    best_cfg = config.load(result.best_config)
    assert best_cfg.train.learning_rate == pytest.approx(result.best["params"]["train.learning_rate"])
    # the best run is a complete run directory; the others keep their reports but not their weights
    best_run = Path(result.best["run"])
    assert (best_run / "model").is_dir() and api.load(best_run).predict(["good great"])
    others = [Path(t["run"]) for t in result.trials if t["number"] != result.best["number"]]
    assert all((r / "WEIGHTS_REMOVED").is_file() and not (r / "model").exists() for r in others)
    assert all((r / "manifest.json").is_file() for r in others)
    with (result.folder / "trials.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 4
    html = result.report.read_text()
    for part in ("Optimisation history", "Parameter importances", "Parallel coordinates", "<svg"):
        assert part in html
    assert (result.folder / "study.db").is_file()


def test_pruning_stops_a_bad_trial_after_its_first_evaluation(tiny_model, toy_data, tmp_path, cache_dir):
    path = search_file(tmp_path, tiny_model, toy_data, "choice(0.003, 0.0000001)", train__early_stopping_patience=0)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    study = optuna.create_study(study_name="prune", storage=storage, direction="maximize")
    study.enqueue_trial({"train.learning_rate": 0.003})
    study.enqueue_trial({"train.learning_rate": 0.0000001})
    result = tune(path, trials=2, study_name="prune", storage=storage, pruner="median", pruner_startup=1)
    good, bad = result.trials
    assert good["state"] == "complete" and good["params"]["train.learning_rate"] == 0.003
    assert bad["state"] == "pruned" and bad["params"]["train.learning_rate"] == 0.0000001
    steps_per_epoch = -(-(240 - 36) // 16)  # 36 of the 240 training rows are the selection split
    # stopped at one of its first evaluations (on the 36-row selection split both trials may still be at chance
    # after one epoch), not after 4 epochs
    assert bad["pruned_at_step"] in (steps_per_epoch, 2 * steps_per_epoch)
    assert list(bad["intermediate"]) == list(range(steps_per_epoch, bad["pruned_at_step"] + 1, steps_per_epoch))
    assert len(good["intermediate"]) == 4
    assert not Path(bad["run"]).exists()  # a pruned trial leaves no half-written run behind
    assert result.best["number"] == good["number"]


def test_an_interrupted_study_resumes_where_it_stopped(tiny_model, toy_data, tmp_path, cache_dir, monkeypatch):
    path = search_file(tmp_path, tiny_model, toy_data, "loguniform(1e-3, 3e-2)", train__epochs=2)
    real = pipeline.finetune
    calls: list[config.Config] = []

    def interrupted_on_second(cfg, *args, **kwargs):
        calls.append(cfg)
        if len(calls) == 2:
            raise Interrupted("stopped by SIGINT at step 3; checkpoint saved")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(pipeline, "finetune", interrupted_on_second)
    with pytest.raises(Interrupted):
        tune(path, trials=3, pruner="none", sampler="random")
    first_value = (
        optuna.load_study(
            study_name="search", storage=f"sqlite:///{tmp_path / 'runs' / 'studies' / 'search' / 'study.db'}"
        )
        .trials[0]
        .value
    )
    interrupted_lr = calls[1].train.learning_rate

    calls.clear()
    monkeypatch.setattr(pipeline, "finetune", lambda cfg, *a, **k: (calls.append(cfg), real(cfg, *a, **k))[1])
    result = tune(path, trials=3, pruner="none", sampler="random")
    states = [t["state"] for t in result.trials]
    assert states.count("complete") == 3 and states.count("fail") == 1
    assert len(calls) == 2  # the finished trial is not run again: only the interrupted one and one new
    assert calls[0].train.learning_rate == interrupted_lr  # the interrupted values run again first
    assert result.trials[0]["value"] == first_value
    # run again: nothing left to do
    calls.clear()
    again = tune(path, trials=3, pruner="none", sampler="random")
    assert calls == [] and again.ran == 0


def test_a_different_search_space_needs_a_new_study(tiny_model, toy_data, tmp_path, cache_dir, capsys):
    path = search_file(tmp_path, tiny_model, toy_data, "loguniform(1e-3, 3e-2)", train__epochs=1)
    assert main(["tune", str(path), "--trials", "1", "--pruner", "none"]) == 0
    path.write_text(path.read_text().replace("loguniform(1e-3, 3e-2)", "loguniform(1e-4, 3e-2)"))
    assert main(["tune", str(path), "--trials", "2"]) == 2
    assert "another search space" in capsys.readouterr().err


def test_a_bad_expression_stops_before_anything_is_written(tiny_model, toy_data, tmp_path, capsys):
    path = search_file(tmp_path, tiny_model, toy_data, "logunifrm(1e-3, 3e-2)")
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err
    assert "did you mean loguniform" in err and f"{path}:" in err
    assert not (tmp_path / "runs").exists()


def test_seeds_give_mean_and_spread_of_every_metric(tiny_model, toy_data, tmp_path, cache_dir, capsys):
    cfg = tiny_config(tiny_model, *toy_data, tmp_path / "runs", train__epochs=2)
    result = run_seeds(cfg, 3, tmp_path / "seeds")
    assert result["seeds"] == [7, 8, 9]
    values = [r["metrics"]["accuracy"] for r in result["runs"]]
    summary = result["summary"]["accuracy"]
    assert summary["mean"] == pytest.approx(sum(values) / 3)
    assert summary["min"] == min(values) and summary["max"] == max(values)
    assert len({r["run"] for r in result["runs"]}) == 3 and all(
        Path(r["run"], "model").is_dir() for r in result["runs"]
    )
    assert (tmp_path / "seeds" / "seeds.json").is_file()
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "macro_f1" in out and "(2 seeds)" in out


def test_a_search_on_data_too_small_for_a_selection_split_stops_before_anything_is_written(
    tiny_model, toy_data, tmp_path, capsys
):
    with open(toy_data[0], encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:16]
    small = tmp_path / "small.csv"
    with small.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    path = search_file(tmp_path, tiny_model, (small, toy_data[1]), "loguniform(1e-3, 3e-2)")
    assert main(["tune", str(path), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert "ranks its trials on a selection split" in err and "16 training rows are too few" in err
    assert not (tmp_path / "runs").exists(), "no study folder, no trial"
