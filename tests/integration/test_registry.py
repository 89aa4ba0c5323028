"""The model store: versions, aliases, checksums, names that cannot escape, parallel registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import tunesmith
from tests.conftest import tiny_config
from tunesmith.cli import main
from tunesmith.errors import InputError
from tunesmith.store import ArtifactError, ModelStore


@pytest.fixture(scope="module")
def run(tiny_model, toy_data, tmp_path_factory) -> tunesmith.Run:
    out = tmp_path_factory.mktemp("registry-runs")
    os.environ["TUNESMITH_CACHE"] = str(out / "cache")
    return tunesmith.finetune(tiny_config(tiny_model, *toy_data, out, train__epochs=2))


def test_register_promote_load_and_show(run, tmp_path, capsys):
    store = ModelStore(tmp_path / "store")
    v1 = store.register(run.path, "support-intents")
    v2 = store.register(run.path, "support-intents")
    assert (v1["version"], v2["version"]) == (1, 2)
    assert v1["data"]["train"] == "data/train/train.csv" and v1["data"]["validation_set"]
    store.promote("support-intents@v1", "prod")
    assert store.version("support-intents@prod")["version"] == 1
    assert store.version("support-intents")["version"] == 2  # no tag: the newest

    os.environ["TUNESMITH_STORE"] = str(tmp_path / "store")
    try:
        model = tunesmith.load("support-intents@prod")
        direct = tunesmith.load(run.path)
        texts = ["great superb film", "dull awful plot"]
        assert [p.label for p in model.predict(texts)] == [p.label for p in direct.predict(texts)]
        assert main(["models", "show", "support-intents@prod", "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["lineage"] == ["support-intents@v1"] and shown["aliases"] == ["prod"]
        assert shown["metrics"]["support-intents@v1"]["accuracy"] == run.manifest["metrics"]["accuracy"]
        assert shown["data"]["fingerprint"] == run.manifest["data"]["fingerprint"]
        assert main(["models", "list"]) == 0
        listing = capsys.readouterr().out
        assert "support-intents@v1" in listing and "@prod" in listing
        # a registered name works wherever a run does: eval through the CLI
        assert main(["eval", "support-intents@v1", "--data", str(run.manifest["data"]["validation"]), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(run.manifest["metrics"]["accuracy"])
    finally:
        del os.environ["TUNESMITH_STORE"]


def test_soft_remove_and_restore(run, tmp_path):
    store = ModelStore(tmp_path / "store")
    store.register(run.path, "m")
    store.register(run.path, "m")
    store.promote("m@v2", "prod")
    with pytest.raises(InputError, match="@prod"):
        store.remove("m@v2")
    store.remove("m@v1")
    assert [r["version"] for r in store.list("m")] == [2]
    assert [r["version"] for r in store.list("m", deleted=True)] == [1, 2]
    with pytest.raises(InputError, match="was removed"):
        store.checkout("m@v1")
    store.restore("m@v1")
    assert store.checkout("m@v1").is_dir()


def test_diff_shows_every_evaluation_set_either_version_has(run, tmp_path):
    store = ModelStore(tmp_path / "store")
    store.register(run.path, "m")
    store.register(run.path, "m")
    store.add_evaluation("m@v2", "other@v9", {"n": 10, "accuracy": 0.5})
    rows = store.diff("m@v1", "m@v2")
    sets = {(r["eval_set"], r["metric"]) for r in rows}
    assert ("m@v1", "accuracy") in sets and ("m@v2", "accuracy") in sets and ("other@v9", "accuracy") in sets
    other = next(r for r in rows if r["eval_set"] == "other@v9" and r["metric"] == "accuracy")
    assert other["a"] is None and other["b"] == 0.5 and other["b_minus_a"] is None


def test_tampered_or_truncated_artifacts_are_refused(run, tmp_path):
    store = ModelStore(tmp_path / "store")
    store.register(run.path, "m")
    view = store.checkout("m@v1")
    weights = next(view.glob("run/model/*.safetensors"))
    os.chmod(weights, 0o644)
    with open(weights, "r+b") as fh:  # same size, one byte changed
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        store.checkout("m@v1")
    os.environ["TUNESMITH_STORE"] = str(tmp_path / "store")
    try:
        with pytest.raises(ArtifactError, match="checksum mismatch"):
            tunesmith.load("m@v1")
    finally:
        del os.environ["TUNESMITH_STORE"]
    config = view / "run" / "config.yaml"
    os.chmod(config, 0o644)
    config.write_bytes(config.read_bytes()[:10])
    with pytest.raises(ArtifactError, match="truncated or altered"):
        store.checkout("m@v1")


@pytest.mark.parametrize(
    "name", ["../evil", "a/b", "..", ".hidden", "Has Space", "UPPER", "", "x" * 65, "a\\b", "a\x00b", "a..b"]
)
def test_path_like_names_are_refused(run, tmp_path, name):
    store = ModelStore(tmp_path / "store")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(InputError, match="not allowed"):
        store.register(run.path, name)
    with pytest.raises(InputError):
        store.checkout(name + "@v1")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("ref", ["m@../x", "m@v0", "m@V1", "m@prod/x", "m@"])
def test_bad_references_are_refused(tmp_path, ref):
    with pytest.raises(InputError):
        ModelStore(tmp_path / "store").version(ref)


def test_parallel_registrations_give_distinct_versions(run, tmp_path):
    root = tmp_path / "store"
    ModelStore(root)  # the index exists before the race
    code = (
        "import sys; from tunesmith.store import ModelStore; "
        "print(ModelStore(sys.argv[1]).register(sys.argv[2], 'raced')['version'])"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(root), str(run.path)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    versions = sorted(int(p.communicate(timeout=120)[0].strip()) for p in procs)
    assert versions == [1, 2, 3, 4, 5, 6]
    assert [r["version"] for r in ModelStore(root).list("raced")] == [1, 2, 3, 4, 5, 6]


def test_export_refuses_a_registered_version(run, tmp_path):
    store = ModelStore(tmp_path / "store")
    store.register(run.path, "m")
    with pytest.raises(InputError, match="read-only"):
        tunesmith.api.merge_adapter("m@v1")
    from tunesmith.pipeline.onnx_export import export_onnx

    with pytest.raises(InputError, match="read-only"):
        export_onnx("m@v1")
