"""The public facade: finetune, validate, evaluate, predict, load, merge_adapter. Each call resolves its
arguments and hands over to the pipeline or a predictor; nothing is implemented here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunesmith import config as cfgmod
from tunesmith.config import Config
from tunesmith.data.validate import DataReport, Examples
from tunesmith.inference.base import Predictor
from tunesmith.rundir import Run

ConfigLike = Config | str | Path | dict


def validate(config: ConfigLike, overrides: list[str] | tuple[str, ...] = ()) -> DataReport:
    """Run every data check; raises DataError on fatal problems, returns the report (warnings, stats)."""
    from tunesmith.pipeline.finetune import validate as check

    return check(registered_model(cfgmod.coerce(config, overrides)))


def finetune(
    config: ConfigLike,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool | str | Path = False,
    run_dir: str | Path | None = None,
    on_eval: Callable[[dict[str, Any]], bool] | None = None,
    select: Callable[[Examples, Examples], tuple[Examples, Examples]] | None = None,
) -> Run:
    """Check the data, train with the configured method, evaluate against baselines, write the run.

    ``resume=True`` continues the newest unfinished run under ``output_dir``; a path names the run.
    ``on_eval(record)`` sees every validation evaluation during training (True stops training);
    ``select(train, val)`` may narrow the data after reading (the planner's probe)."""
    from tunesmith.pipeline.finetune import finetune as run

    cfg = registered_model(cfgmod.coerce(config, overrides))
    return run(cfg, resume=resume, run_dir=run_dir, on_eval=on_eval, select=select)


def registered_model(cfg: Config) -> Config:
    """``model: NAME@REF`` (a registered version, e.g. fraud@prod) becomes that version's run folder, checked
    against its checksums: a run starts from a registered model as from a run directory (its base_model/, else its
    model/). ``data.knowledge_base: NAME@REF`` becomes the registered knowledge base's checked folder."""
    from tunesmith.store import resolve_run

    spec = cfg.model or ""
    if "@" in spec and "/" not in spec and not Path(spec).exists():
        cfg = cfgmod.from_dict(cfgmod.to_dict(cfg) | {"model": str(resolve_run(spec))})
    kb = cfg.data.knowledge_base
    folder = knowledge_base_path(kb) if kb else kb
    if folder != kb:  # a registered knowledge base: its checked copy in the store
        raw = cfgmod.to_dict(cfg)
        cfg = cfgmod.from_dict(raw | {"data": {**raw["data"], "knowledge_base": folder}})
    return cfg


def load(run: str | Path, backend: str = "auto") -> Predictor:
    """A finished run, ready for use: a classifier's ``.predict(inputs)`` gives labels and probabilities; a
    generator's ``.generate(prompt)`` answers (``.stream(prompt)`` yields the answer as it is written).

    ``run`` is a run directory or a registered model (``name``, ``name@v2``, ``name@prod``), whose files are
    checked against their registered checksums before use. ``backend``: ``auto`` (a classifier's checked ONNX
    export when present), ``torch`` or ``onnx``."""
    from tunesmith.inference import load as load_run
    from tunesmith.store import resolve_run

    return load_run(resolve_run(run), backend)


def evaluate(run: str | Path, data: str | Path) -> dict[str, Any]:
    """Metrics of a finished run's model on a file like its validation data."""
    return load(run).evaluate_file(data)


def predict(run: str | Path, input_file: str | Path, output_file: str | Path, **options: Any) -> int:
    """Predict (classify, or answer) every row of input_file; returns the row count. Generation takes
    ``max_new_tokens``, ``temperature``, ``top_p`` and ``seed``."""
    return load(run).predict_file(input_file, output_file, **options)


def merge_adapter(run_dir: str | Path) -> Path:
    """Merge a LoRA run's adapter into full weights at ``RUN/model``, kept only if it reproduces base + adapter
    on the run's golden held-out examples."""
    from tunesmith.pipeline.export import merge_adapter as merge

    return merge(run_dir)


def export_onnx(run_dir: str | Path, quantize: bool = True, limit: int = 2000) -> dict[str, Any]:
    """ONNX export of a text classifier (int8 where it passes the held-out parity check)."""
    from tunesmith.pipeline.onnx_export import export_onnx as export

    return export(run_dir, quantize=quantize, limit=limit)


def export_gguf(run_dir: str | Path, quant: str = "f16") -> dict[str, Any]:
    """GGUF export of a causal-LM run for llama.cpp and Ollama (``RUN/gguf/model.gguf`` and a ``Modelfile``),
    read back with transformers and compared with the merged model on held-out prompts."""
    from tunesmith.pipeline.gguf_export import export_gguf as export

    return export(run_dir, quant=quant)


# --- what the command line (and the dashboard) use beyond training and prediction --------------------------
def resolve_config(config: ConfigLike, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """A validated Config from a file, a mapping or a Config, with ``a.b=value`` overrides."""
    return cfgmod.coerce(config, overrides)


def run_directory(config: Config, resume: bool | str | Path = False, run_dir: str | Path | None = None) -> Path:
    """Where a run of ``config`` writes: ``run_dir``, the run to resume, or a new folder under output_dir."""
    from tunesmith.rundir import locate_run

    return locate_run(config.output_dir, config.task, config.method, resume, run_dir)


def manifest(run: str | Path) -> dict[str, Any]:
    """A run's manifest (a run directory or a registered reference)."""
    from tunesmith.rundir import read_manifest
    from tunesmith.store import resolve_run

    return read_manifest(resolve_run(run))


def summary_lines(manifest: dict[str, Any], run_dir: str | Path) -> list[str]:
    """The task's short terminal summary of a finished run."""
    from tunesmith.tasks import get_task

    return get_task(manifest["task"]).summary_lines(manifest, Path(run_dir))


def base_models() -> list[dict[str, str]]:
    """The catalog of packaged base models, with whether each is installed."""
    from tunesmith.models.catalog import list_models

    return list_models()


def config_reference() -> list[tuple[str, str, str]]:
    """(key, default, help) for every config key."""
    return cfgmod.describe()


def registry(root: str | Path | None = None) -> Any:
    """The model store (registered versions, aliases, lineage, evaluations)."""
    from tunesmith.store import ModelStore

    return ModelStore(root) if root is not None else ModelStore()


def promote(ref: str, alias: str, max_regression: float | None = None, force: bool = False) -> dict[str, Any]:
    """Move ``alias`` to ``ref`` through the promotion gate (measuring any missing evaluation first)."""
    from tunesmith.lifecycle.gate import DEFAULT_MAX_REGRESSION
    from tunesmith.lifecycle.promote import promote_checked

    limit = DEFAULT_MAX_REGRESSION if max_regression is None else max_regression
    return promote_checked(registry(), ref, alias, limit, force)


def gate(ref: str, alias: str, max_regression: float | None = None) -> dict[str, Any]:
    """What the promotion gate says of moving ``alias`` to ``ref``, nothing moved: ``passed``, ``reasons``,
    ``comparisons`` (one dict per evaluation set: old and new figure, the change, its interval, regression)."""
    from tunesmith.lifecycle.gate import DEFAULT_MAX_REGRESSION
    from tunesmith.lifecycle.promote import gate_check

    limit = DEFAULT_MAX_REGRESSION if max_regression is None else max_regression
    out = gate_check(registry(), ref, alias, limit)
    return {**out, "comparisons": [c.to_dict() for c in out["comparisons"]]}


def update(ref: str, data: str, validation: str | None = None, *, max_regression: float | None = None, **kw: Any):
    """Fine-tune a registered version on new data with replay, gate it against every earlier evaluation set and
    register the child (see lifecycle.update)."""
    from tunesmith.lifecycle.gate import DEFAULT_MAX_REGRESSION
    from tunesmith.lifecycle.update import update as run_update

    limit = DEFAULT_MAX_REGRESSION if max_regression is None else max_regression
    return run_update(ref, data, validation, max_regression=limit, **kw)


def regression_units(metric: str) -> str:
    from tunesmith.lifecycle.gate import regression_units as units

    return units(metric)


def plan(raw: dict[str, Any], **options: Any) -> Any:
    """Every candidate model x method probed and predicted, one recommended (see planning.plan.make_plan)."""
    from tunesmith.planning.plan import make_plan

    return make_plan(raw, **options)


def write_plan(plan: Any, path: str | Path) -> Path:
    from tunesmith.planning.plan import write_config

    return write_config(plan, Path(path))


def parse_duration(text: str) -> float:
    from tunesmith.planning.plan import parse_duration as parse

    return parse(text)


def format_duration(seconds: float) -> str:
    from tunesmith.planning.plan import format_duration as fmt

    return fmt(seconds)


def tune(config: str | Path, overrides: list[str] | tuple[str, ...] = (), **options: Any) -> Any:
    """An Optuna search over the config's search space, resumable (see tuning.study.tune)."""
    from tunesmith.tuning.study import tune as run

    return run(config, overrides, **options)


def trials_table(result: Any) -> str:
    from tunesmith.tuning.study import trials_table as table

    return table(result)


def train_seeds(config: ConfigLike, seeds: int, overrides: list[str] | tuple[str, ...] = (), progress: Any = None):
    """The config trained with N seeds; every metric's mean, std, min and max."""
    from tunesmith.tuning.seeds import run_seeds

    return run_seeds(cfgmod.coerce(config, overrides), seeds, progress=progress)


def seeds_table(result: dict[str, Any]) -> str:
    from tunesmith.tuning.seeds import seeds_table as table

    return table(result)


def check_can_listen(host: str, port: int) -> None:
    """InputError when ``host:port`` cannot be listened on (checked before a model is loaded)."""
    from tunesmith.serve.security import check_can_listen as check

    check(host, port)


def server(run: str | Path, host: str, token_file: str | None, backend: str = "auto", **limits: Any) -> Any:
    """(app, predictor, token, where the token came from) for serving ``run``; ``limits`` are ServeSettings
    fields (a None leaves the default: 16 MiB bodies for image models, 1 MiB otherwise)."""
    from tunesmith.serve import ServeSettings, create_app
    from tunesmith.serve.security import load_token

    token, source = load_token(host, token_file)
    model = load(run, backend=backend)
    if limits.get("max_body_bytes") is None:
        limits["max_body_bytes"] = (16 << 20) if model.input_kind == "image" else (1 << 20)
    app = create_app(model, str(run), ServeSettings(token=token, **limits))
    return app, model, token, source


def body_guard(app: Any, limit: int, timeout_s: float = 30.0) -> Any:
    """``app`` behind the server's body limits: over ``limit`` bytes is 413 before it is read, a body that has not
    arrived within ``timeout_s`` is 408 (the dashboard's uploads; serve adds its bearer token to the same guard)."""
    from tunesmith.serve.security import Guard

    return Guard(app, None, limit, timeout_s)


def load_token(host: str, token_file: str | None) -> tuple[str, str]:
    """(token, where it came from): --token-file, else $TUNESMITH_TOKEN, else (loopback only) a fresh one."""
    from tunesmith.serve.security import load_token as load

    return load(host, token_file)


def data_checks_html(report: dict[str, Any]) -> str:
    """A data report (``RUN/data_report.json``, ``DataReport.to_dict()``) as the reports show it: the warnings
    table and the data's figures."""
    from tunesmith.eval.panels import data_checks

    return data_checks(report)


def task_names() -> list[str]:
    from tunesmith.tasks import task_names as names

    return names()


def workspace(folders: list[str | Path]) -> Any:
    """The dashboard's workspace over ``folders`` (the first is where new runs, uploads, configs and labelling
    queues go): its runs, live progress, comparisons, background jobs, labelling queues and playground
    (see workspace/)."""
    from tunesmith.workspace import Workspace

    return Workspace(folders)


def check_labels(
    run_or_config: str | Path | Config, folds: int = 5, overrides: list[str] | tuple[str, ...] = ()
) -> Any:
    """Training examples whose labels look wrong: out-of-fold probabilities on frozen features, confident
    learning ranks them (see labels.check). Returns a LabelCheck with ``suspects`` most likely first."""
    from tunesmith.labels.check import check_labels as run

    return run(run_or_config, folds, overrides)


def label_next(
    source: str | Path,
    pool: str | Path,
    k: int = 50,
    strategy: str | None = None,
    seed: int = 0,
    input_column: str | None = None,
    label_column: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    near: float | None = None,
) -> Any:
    """The k rows of an unlabelled pool (texts or images) whose labels would help most (active learning).
    ``source``: a run (its model scores the pool), a config (a linear model on the frozen features of its labelled
    data) or a model (no labels yet: the picks cover the pool's clusters). ``input_column``: the pool's text column,
    or an image listing's path column (default: the config's). ``strategy``: margin, entropy, diverse or random
    (default: the task's; diverse for texts, margin for images).
    Rows whose embedding's cosine similarity to a training example or an earlier pick reaches ``near`` (default:
    the task's, 0.95 for texts, 0.98 for images) are
    passed over. Returns a Selection; ``.write_csv(path)`` writes the rows with an empty label column and the
    reasons."""
    from tunesmith.labels.next import label_next as run

    return run(source, pool, k, strategy, seed, input_column, label_column, overrides, near=near)


def learn(
    config: str | Path,
    pool: str | Path,
    rounds: int,
    k: int,
    oracle_column: str = "label",
    strategy: str | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    on_round: Any = None,
    baseline: bool = False,
    near: float | None = None,
    warm: bool = False,
) -> Any:
    """The active-learning loop on a pool whose labels are known (``oracle_column``): train, pick k, reveal,
    retrain, ``rounds`` times (``baseline``: again with random picks; ``warm``: each round starts from the previous
    round's weights). Returns a LearnResult; its folder holds every round's run, learning_curve.json and report.html
    (labels against validation accuracy with intervals)."""
    from tunesmith.labels.learn import learn as run

    return run(config, pool, rounds, k, oracle_column, strategy, seed, out, overrides, on_round, baseline, near, warm)


# --- knowledge bases ------------------------------------------------------------------------------------------------
def kb_build(
    paths: list[str], name: str, encoder: str | None = None, chunk_size: int | None = None,
    overlap: int | None = None, root: str | Path | None = None,
) -> Any:  # fmt: skip
    """Build (or rebuild, embedding only changed files) the knowledge base ``name`` from documents and folders."""
    from tunesmith.knowledge.base import create
    from tunesmith.runtime import quiet_libraries, set_threads

    set_threads(None)
    quiet_libraries()
    return create(name, root).build(paths, encoder, chunk_size, overlap)


def kb_search(name: str, queries: list[str], k: int = 5, root: str | Path | None = None) -> list[list[Any]]:
    """The ``k`` chunks nearest each query, best first, with their sources."""
    from tunesmith.knowledge.base import KnowledgeBase
    from tunesmith.runtime import quiet_libraries, set_threads

    set_threads(None)
    quiet_libraries()
    return KnowledgeBase.named(knowledge_base_path(name, root), root).search(queries, k)


def kb_pairs(name: str, output: str | Path, root: str | Path | None = None) -> int:
    """(title, first chunk) pairs of a knowledge base's sections, as JSON lines for task: embedding."""
    from tunesmith.files import write_jsonl
    from tunesmith.knowledge.base import KnowledgeBase

    rows = KnowledgeBase.named(knowledge_base_path(name, root), root).pairs()
    write_jsonl(Path(output), rows)
    return len(rows)


def kb_list(root: str | Path | None = None) -> list[dict[str, Any]]:
    from tunesmith.knowledge.base import list_bases

    return list_bases(root)


def kb_remove(name: str, root: str | Path | None = None) -> None:
    from tunesmith.knowledge.base import KnowledgeBase

    KnowledgeBase.named(name, root).remove()


def kb_register(name: str, as_name: str | None = None, root: str | Path | None = None) -> dict[str, Any]:
    """Store the knowledge base's current build as the next version of ``as_name`` (default: its own name) in the
    model store, beside the models: ``data.knowledge_base: NAME@vN`` names it later."""
    from tunesmith.knowledge.base import KnowledgeBase
    from tunesmith.store.store import ModelStore

    kb = KnowledgeBase.named(name, root)
    return ModelStore().register_knowledge_base(kb.folder, as_name or kb.name)


def knowledge_base_path(spec: str, root: str | Path | None = None) -> str:
    """A registered knowledge base (``NAME@vN``, ``NAME@alias``) as its checked folder in the store; a name or a
    folder as it is."""
    if "@" not in spec or "/" in spec or Path(spec).exists():
        return spec
    from tunesmith.store import resolve_run

    return str(resolve_run(spec))
