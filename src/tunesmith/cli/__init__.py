"""tunesmith's command line. Subcommands map one to one onto tunesmith.api; exit 0 ok, 2 bad input, 1 other."""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tunesmith.cli.knowledge import add_parsers as add_kb_parsers
from tunesmith.cli.knowledge import kb_command
from tunesmith.cli.labels import EXAMPLES as LABEL_EXAMPLES
from tunesmith.cli.labels import add_parsers as add_label_parsers
from tunesmith.cli.labels import label_next_command, learn_command
from tunesmith.cli.plan import add_parsers as add_plan_parsers
from tunesmith.cli.plan import plan_command, train_seeds, tune_command
from tunesmith.cli.table import listing, table
from tunesmith.errors import ConfigError, DataError, TunesmithError

EXAMPLES = """examples:
  tunesmith validate examples/text-classification.yaml       check the data first; nothing is written
  tunesmith train my.yaml --set train.epochs=2               fine-tune; prints the verdict and the run folder
  tunesmith eval runs/RUN --data new_labelled.csv             score a run on other labelled data
  tunesmith predict runs/RUN --input new.csv --output out.jsonl
  tunesmith serve runs/RUN                                    HTTP on 127.0.0.1:8000 with a bearer token
  tunesmith ui                                                the web dashboard over this folder's runs
  tunesmith config                                            every config key, its default and meaning

A config's relative data paths are read from the folder you run tunesmith in, not the config's folder.
`tunesmith COMMAND --help` describes each command."""

TRAIN_EXAMPLES = """examples:
  tunesmith train my.yaml
  tunesmith train my.yaml --set method=lora --set train.epochs=2
  tunesmith train my.yaml --resume                 continue the newest unfinished run
  tunesmith train my.yaml --nproc 2                two processes (torchrun) on one run directory"""


class Parser(argparse.ArgumentParser):
    """argparse, plus "did you mean" for a misspelled command."""

    def error(self, message: str) -> Any:
        import difflib
        import re

        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:
            choices = re.findall(r"'([^']*)'", bad.group(2))
            close = difflib.get_close_matches(bad.group(1), choices, n=1, cutoff=0.5)
            if close:
                message += f"; did you mean {close[0]!r}?"
        return super().error(message)


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="tunesmith",
        description="Fine-tune a pre-trained model for your task, and check it against the general model.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--store", help="model store folder (default $TUNESMITH_STORE or ~/.local/share/tunesmith/store)")
    p.add_argument("--version", action="version", version=f"tunesmith {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    t = sub.add_parser(
        "train",
        help="check the data, fine-tune, evaluate, write a run directory",
        description="Check the data, fine-tune, evaluate against the general model and write a run directory.",
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("config", help="the YAML config (see examples/ and `tunesmith config`)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    t.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="RUN",
        help="continue the newest unfinished run (or the named one) from its last complete checkpoint",
    )
    t.add_argument("--nproc", type=int, default=1, help="processes to train with (through torchrun)")
    t.add_argument("--seeds", type=int, default=1, help="train with N seeds (seed, seed+1, ...): mean and std")
    t.add_argument("--run-dir", help=argparse.SUPPRESS)

    v = sub.add_parser("validate", help="run the data checks only")
    v.add_argument("config", help="the YAML config whose data to check")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    v.add_argument("--json", action="store_true", help="the full report as JSON")

    e = sub.add_parser("eval", help="metrics of a run's model on a labelled file")
    e.add_argument("run", help="a run directory or a registered model (NAME@ALIAS)")
    e.add_argument("--data", required=True, help="labelled data in the run's training format")
    e.add_argument("--json", action="store_true", help="the metrics as JSON")

    pr = sub.add_parser("predict", help="predict labels (or generate answers) for every row of a file")
    pr.add_argument("run", help="a run directory or a registered model (NAME@ALIAS)")
    pr.add_argument("--input", required=True, help="rows to predict (CSV, JSONL, Parquet; images: a folder too)")
    pr.add_argument("--output", required=True, help="where to write one JSON line per input row")
    _generation_options(pr)

    g = sub.add_parser("generate", help="answer a prompt with a causal-lm run, streaming to the terminal")
    g.add_argument("run", help="a causal-lm run directory or registered model")
    g.add_argument("--prompt", required=True, help="the user's message (or raw prompt for prompt/completion runs)")
    g.add_argument("--system", help="a system message (chat runs)")
    _generation_options(g)

    x = sub.add_parser("export", help="merge a LoRA adapter into full weights, or export a classifier to ONNX")
    x.add_argument("run", help="a run directory")
    how = x.add_mutually_exclusive_group(required=True)
    how.add_argument("--merge", action="store_true", help="merge the adapter into the base weights (RUN/model)")
    how.add_argument("--onnx", action="store_true", help="ONNX export (RUN/onnx), kept only after a parity check")
    how.add_argument(
        "--gguf", action="store_true", help="causal-lm: GGUF for llama.cpp / Ollama (RUN/gguf, with a Modelfile)"
    )
    x.add_argument("--quant", default="f16", help="with --gguf: f16 (default), q8_0 or f32")
    x.add_argument("--no-quantize", action="store_true", help="with --onnx: fp32 instead of int8 weights")

    _models_parser(sub)
    sv = sub.add_parser("serve", help="serve a run or registered model over HTTP (FastAPI, token required)")
    sv.add_argument("run", help="a run directory or a registered model, e.g. support-intents@prod")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    sv.add_argument("--port", type=_port, default=8000, help="port to listen on, 1-65535 (default 8000)")
    sv.add_argument("--token-file", help="file holding the bearer token (else $TUNESMITH_TOKEN; else generated)")
    sv.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto", help="auto: ONNX when exported")
    sv.add_argument("--max-batch", type=_positive_int, default=32, help="inputs per model call")
    sv.add_argument("--max-wait-ms", type=_positive_float, default=5.0, help="longest wait to fill a batch")
    sv.add_argument("--max-queue", type=_positive_int, default=256, help="inputs waiting before 429")
    sv.add_argument("--max-inputs", type=_positive_int, default=64, help="inputs per request")
    sv.add_argument("--max-input-chars", type=_positive_int, default=10_000, help="characters per text input")
    sv.add_argument(
        "--max-body-bytes", type=_positive_int, default=None, help="request body limit (1 MiB; images 16 MiB)"
    )
    sv.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds per request before 504")
    ui = sub.add_parser("ui", help="the web dashboard: runs, live training, compare, new run, models, try, label")
    ui.add_argument("folders", nargs="*", help="folders it may read (default: this one); the first holds new runs "
                    "(runs/), uploads, configs and labelling queues")  # fmt: skip
    ui.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    ui.add_argument("--port", type=_port, default=8765, help="port to listen on (default 8765)")
    ui.add_argument("--token-file", help="file holding the login token (else $TUNESMITH_TOKEN; else generated)")
    ui.add_argument("--max-upload-mb", type=_positive_int, default=64, help="largest upload in MiB (default 64)")
    u = sub.add_parser("update", help="fine-tune a registered version on new data (with replay) and gate it")
    u.add_argument("ref", help="the version to start from, e.g. support-intents@prod")
    u.add_argument("--data", required=True, help="new training data, in the version's data format")
    u.add_argument("--validation", help="new validation data (default: a held-out split of --data)")
    u.add_argument("--replay", type=float, default=None, help="replayed earlier examples per new one (default 0.5)")
    u.add_argument(
        "--max-regression",
        type=float,
        default=None,
        help="largest allowed drop on any earlier evaluation set: accuracy points (classifiers) or percent of the "
        "loss (causal-lm); default 1.0",
    )
    u.add_argument("--alias", help="alias to move when the gate passes (default: the alias in REF, if any)")
    u.add_argument(
        "--force", action="store_true", help="move the alias even when an earlier set regressed (said in the report)"
    )
    u.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    add_plan_parsers(sub)
    cl = sub.add_parser("check-labels", help="training examples whose labels look wrong (confident learning)")
    cl.add_argument("run", help="a run directory (its data and base model) or a config file")
    cl.add_argument("--folds", type=int, default=5, help="cross-validation folds for the out-of-fold scores")
    cl.add_argument("--top", type=int, default=20, help="suspects to print (all go to --output)")
    cl.add_argument("--output", help="write every suspect to this CSV (file, line, example, label, suggested, ...)")
    cl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    add_label_parsers(sub)
    add_kb_parsers(sub, Parser)
    comp = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    comp.add_argument("shell", choices=("bash", "zsh"), help="e.g. `tunesmith completion bash >> ~/.bashrc`")
    c = sub.add_parser("config", help="list every config key with its default and meaning")
    c.add_argument("--markdown", action="store_true", help="as a Markdown table (docs/config.md)")
    for name, text in {**COMMAND_EXAMPLES, **LABEL_EXAMPLES}.items():
        sub.choices[name].epilog = "examples:\n" + text
        sub.choices[name].formatter_class = argparse.RawDescriptionHelpFormatter
    return p


COMMAND_EXAMPLES = {
    "validate": "  tunesmith validate my.yaml\n  tunesmith validate my.yaml --set data.train=more.csv --json",
    "eval": "  tunesmith eval runs/RUN --data test.csv\n  tunesmith eval support-intents@prod --data test.csv --json",
    "predict": "  tunesmith predict runs/RUN --input new.csv --output predictions.jsonl\n"
    "  tunesmith predict runs/CHAT_RUN --input prompts.jsonl --output answers.jsonl --max-new-tokens 128",
    "generate": '  tunesmith generate runs/CHAT_RUN --prompt "How do I reset my password?"',
    "export": "  tunesmith export runs/LORA_RUN --merge\n  tunesmith export runs/RUN --onnx\n"
    "  tunesmith export runs/CHAT_RUN --gguf --quant q8_0",
    "ui": "  tunesmith ui                       this folder: its runs, and new runs under ./runs\n"
    "  tunesmith ui ~/projects/tickets data/   a workspace and a second folder it may read\n"
    "  TUNESMITH_TOKEN=... tunesmith ui --port 9000",
    "serve": "  tunesmith serve runs/RUN\n  TUNESMITH_TOKEN=secret tunesmith serve support-intents@prod --port 9000",
    "update": "  tunesmith update support-intents@prod --data new.csv\n"
    "  tunesmith update support-intents@prod --data new.csv --replay 1.0 --max-regression 0.5",
    "plan": "  tunesmith plan my.yaml --budget 10m\n  tunesmith plan --task text-classification --data train.csv",
    "tune": "  tunesmith tune search.yaml --trials 20\n  tunesmith tune search.yaml --trials 40 --storage "
    "postgresql://host/db   (several machines share one study)",
    "models": "  tunesmith models\n  tunesmith models register runs/RUN --name support-intents --promote prod\n"
    "  tunesmith models list\n  tunesmith models diff support-intents@v1 support-intents@v2",
    "config": "  tunesmith config | grep lora",
    "completion": "  tunesmith completion bash >> ~/.bashrc\n  tunesmith completion zsh > ~/.zfunc/_tunesmith",
    "check-labels": "  tunesmith check-labels my.yaml --output suspects.csv\n"
    "  tunesmith check-labels runs/RUN --top 50",
}


def _models_parser(sub: Any) -> None:
    m = sub.add_parser("models", help="registered versions (register, promote, list, show, diff, rm) and the catalog")
    ms = m.add_subparsers(dest="models_command", parser_class=Parser)
    ms.add_parser("catalog", help="the offline model catalog (also `tunesmith models` alone)")
    r = ms.add_parser("register", help="store a finished run as the next version of NAME")
    r.add_argument("run", help="a finished run directory")
    r.add_argument("--name", required=True, help="the model's name, e.g. support-intents")
    r.add_argument("--promote", metavar="ALIAS", help="also move NAME@ALIAS to it (through the gate)")
    p = ms.add_parser("promote", help="point an alias (prod, staging, ...) at a version, through the gate")
    p.add_argument("ref", help="e.g. support-intents@v3")
    p.add_argument("--to", required=True, metavar="ALIAS", help="the alias to move, e.g. prod")
    p.add_argument(
        "--max-regression", type=float, default=None, help="largest allowed drop on an earlier evaluation set"
    )
    p.add_argument("--force", action="store_true", help="move the alias even when the gate refuses")
    li = ms.add_parser("list", help="registered versions")
    li.add_argument("name", nargs="?", help="only this model's versions")
    li.add_argument("--all", action="store_true", help="include removed versions")
    li.add_argument("--json", action="store_true", help="as JSON")
    sh = ms.add_parser("show", help="config, metrics, data fingerprints, lineage and history of a version")
    sh.add_argument("ref", help="NAME@vN or NAME@ALIAS")
    sh.add_argument("--json", action="store_true", help="as JSON")
    d = ms.add_parser("diff", help="metrics of two versions side by side on every evaluation set either has seen")
    d.add_argument("a", help="the first version, NAME@vN or NAME@ALIAS")
    d.add_argument("b", help="the second version")
    d.add_argument("--json", action="store_true", help="as JSON")
    rm = ms.add_parser("rm", help="remove a version (soft: `restore` brings it back)")
    rm.add_argument("ref", help="NAME@vN")
    rs = ms.add_parser("restore", help="bring back a removed version")
    rs.add_argument("ref", help="NAME@vN")


def _generation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=None, help="longest answer in tokens (default 256)")
    p.add_argument("--temperature", type=float, default=None, help="0 (default) is greedy; above 0 samples")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling share (default 1.0)")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling")


def _generation_kwargs(args: argparse.Namespace) -> dict:
    names = ("max_new_tokens", "temperature", "top_p", "seed")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(args: argparse.Namespace) -> int:
    from tunesmith import api

    if args.seeds > 1:
        return train_seeds(args)
    if args.seeds < 1:
        raise ConfigError(f"--seeds {args.seeds}: at least 1")

    if args.nproc > 1 and os.environ.get("LOCAL_RANK") is None:
        # Check in this process (nothing written on a fatal problem), then start the workers on one run dir.
        cfg = api.resolve_config(args.config, args.set)
        api.validate(cfg)
        run_dir = args.run_dir or str(api.run_directory(cfg, args.resume))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={args.nproc}",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            "-m",
            "tunesmith.cli",
            "train",
            args.config,
            "--run-dir",
            run_dir,
        ]
        cmd += [x for s in args.set for x in ("--set", s)]
        if args.resume:
            cmd.append("--resume")
        code = subprocess.call(cmd)
        if code != 0:
            return 2 if code == 2 else 1
        _print_summary(api.manifest(run_dir), Path(run_dir))
        print(run_dir)
        return 0
    run = api.finetune(args.config, args.set, resume=args.resume, run_dir=args.run_dir)
    if run.manifest:
        _print_summary(run.manifest, run.path)
        print(run.path)
    return 0


def _print_summary(manifest: dict, run_dir: Path) -> None:
    from tunesmith import api

    for line in api.summary_lines(manifest, run_dir):
        print(line)


def _validate(args: argparse.Namespace) -> int:
    from tunesmith import api

    report = api.validate(args.config, args.set)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.render() or "no problems found")
        print(f"ok: {len(report.warnings)} warning(s), no fatal problems")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tunesmith import api

    m = api.evaluate(args.run, args.data)
    if args.json:
        print(json.dumps(m))
        return 0
    ci = m.get("intervals", {})

    def figure(key: str) -> str:
        lo_hi = ci.get(key)
        return f"{100 * m[key]:5.1f}%" + (f"  (95% CI {100 * lo_hi[0]:.1f} to {100 * lo_hi[1]:.1f})" if lo_hi else "")

    if "mrr_at_10" in m:  # an embedding run: its queries searching the file's passages
        print(f"{m['n']} queries searching {m['corpus']} passages")
        for key, shown in (("recall_at_1", "recall@1"), ("recall_at_5", "recall@5"), ("recall_at_10", "recall@10"),
                           ("mrr_at_10", "MRR@10"), ("ndcg_at_10", "nDCG@10")):  # fmt: skip
            print(f"  {shown:<12}{figure(key)}")
    elif "perplexity" in m:
        print(f"{m['n']} examples: loss {m['loss']:.4f}, perplexity {m['perplexity']:.2f}")
        for key in ("token_f1", "rouge_l", "exact_match"):
            if key in m:
                print(f"  {key:<12}{figure(key)}  on {m['n_generated']} generated answers")
    else:
        print(f"{m['n']} examples")
        print(f"  {'accuracy':<12}{figure('accuracy')}\n  {'macro-F1':<12}{figure('macro_f1')}")
        print(f"  {'ECE':<12}{m['ece']:.3f}")
        width = max(len(lab) for lab in m["per_class"]) + 2
        print(f"\n  {'class':<{width}}{'precision':>10}{'recall':>8}{'F1':>8}{'n':>7}")
        for lab, r in m["per_class"].items():
            print(
                f"  {lab:<{width}}{100 * r['precision']:>9.1f}%{100 * r['recall']:>7.1f}%{100 * r['f1']:>7.1f}%"
                f"{r['support']:>7}"
            )
        for lab, d in m.get("detection", {}).items():  # tables: how well the rare class is found
            print(
                f"\n  detecting {lab}: PR-AUC {d['average_precision']:.3f}, ROC-AUC {d['roc_auc']:.3f}, recall at 1% "
                f"false positives {100 * d['recall_at_fpr']:.1f}%, precision in the top 100 "
                f"{100 * d['precision_at_k']:.1f}%"
            )
    n = m.get("n_generated", m["n"])
    if n < 100:
        print(f"\nnote: only {n} examples: the intervals are wide; small differences between models are noise.")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from tunesmith import api

    n = api.predict(args.run, args.input, args.output, **_generation_kwargs(args))
    print(f"wrote {n} predictions to {args.output}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from tunesmith import api

    model = api.load(args.run)
    if not model.generates:
        raise ConfigError(f"{args.run}: generate needs a causal-lm run; this one is a classifier (use predict)")
    kwargs = _generation_kwargs(args)
    prompt, sources = model.ground(args.prompt)  # a model trained with a knowledge base reads retrieved chunks
    for piece in model.stream(prompt, system=args.system, retrieve=False, **kwargs):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    if sources:
        print("\nsources:")
        for i, h in enumerate(sources, 1):
            print(f"  [{i}] {h.where()}" + (f"  {h.heading}" if h.heading else ""))
    return 0


def _export(args: argparse.Namespace) -> int:
    from tunesmith import api

    if args.onnx:
        f = api.export_onnx(args.run, quantize=not args.no_quantize)
        print(
            f"{f['file']} ({f['size_mb']} MB, {f['quantized'] or 'fp32'}): on {f['examples']} held-out examples "
            f"{f['agreement']:.2%} of predictions agree, accuracy {f['accuracy_torch']:.2%} -> "
            f"{f['accuracy_onnx']:.2%}; predict and serve use it from now on"
        )
        return 0
    if args.gguf:
        g = api.export_gguf(args.run, quant=args.quant)
        checked = (
            f"read back by transformers: {g['identical_greedy_outputs']} of {g['prompts']} held-out prompts get "
            "identical greedy answers"
            if g["prompts"]
            else "read back by transformers"
        )
        print(f"{Path(args.run) / g['file']} ({g['size_mb']} MB, {g['quant']}) and {g['modelfile']}; {checked}")
        print(f"  ollama: cd {Path(args.run) / 'gguf'} && ollama create NAME -f Modelfile && ollama run NAME")
        return 0
    folder = api.merge_adapter(args.run)
    print(f"merged weights in {folder} (Hugging Face format); outputs checked against base + adapter")
    return 0


def _models(args: argparse.Namespace) -> int:
    from tunesmith.cli.models import run_models

    if args.models_command not in (None, "catalog"):
        return run_models(args)
    from tunesmith.api import base_models as list_models

    rows = [[r["name"], r["task"], r["params"], r["installed"], r["description"]] for r in list_models()]
    print(table(["name", "task", "params", "installed", "description"], rows, right=[2]))
    return 0


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tunesmith")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _completion(args: argparse.Namespace) -> int:
    from tunesmith.cli.completion import script

    print(script(_parser(), args.shell), end="")
    return 0


def _config(args: argparse.Namespace) -> int:
    from tunesmith.api import config_reference as describe

    rows = describe()
    if args.markdown:
        print("| key | default | meaning |\n|---|---|---|")
        for key, default, help_ in rows:
            print(f"| `{key}` | `{default}` | {help_} |")
        return 0
    print(table(["key", "default", "meaning"], rows))
    return 0


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a port; allowed: 1-65535")
    return value


def _positive(kind: type, text: str) -> Any:
    """``text`` as a finite number of ``kind`` (int: >= 1, float: > 0), else argparse's error (exit 2)."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed; give a number {'>= 1' if kind is int else '> 0'}")
    return value


def _positive_int(text: str) -> int:
    return _positive(int, text)


def _positive_float(text: str) -> float:
    return _positive(float, text)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tunesmith import api

    api.check_can_listen(args.host, args.port)

    limits = {
        "max_body_bytes": args.max_body_bytes,
        "max_inputs": args.max_inputs,
        "max_input_chars": args.max_input_chars,
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "max_queue": args.max_queue,
        "timeout_s": args.timeout,
    }
    app, model, token, source = api.server(args.run, args.host, args.token_file, args.backend, **limits)
    url = f"http://{args.host}:{args.port}"
    generates = bool(getattr(model, "generates", False))
    example = '"<base64 PNG or JPEG>"' if getattr(model, "input_kind", "text") == "image" else '"an example"'
    route, body = (
        ("/v1/generate", '{"prompt": "Hello"}') if generates else ("/v1/predict", f'{{"inputs": [{example}]}}')
    )
    shown = token if source == "generated for this run" else "$TOKEN"
    lines = [
        f"serving {args.run} ({model.manifest.get('task')}, backend {model.backend}) at {url}",
        f"token: {token if source == 'generated for this run' else '(not shown)'}  (from {source})",
        "try:",
        f"  curl -s {url}{route} -H 'Authorization: Bearer {shown}' -H 'Content-Type: application/json' -d '{body}'",
        f"schema: {url}/openapi.json (the same token); health: {url}/health",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from tunesmith.ui import run_dashboard

    return run_dashboard(args.folders, args.host, args.port, args.token_file, args.max_upload_mb)


def _check_labels(args: argparse.Namespace) -> int:
    from tunesmith import api

    found = api.check_labels(args.run, args.folds, args.set)
    n = len(found.suspects)
    print(
        f"{n} of {found.examples} training examples look mislabelled ({100 * n / max(found.examples, 1):.1f}%). "
        f"Scored out of fold ({found.folds} folds) by a linear model on the frozen pre-trained features, whose "
        f"out-of-fold accuracy is {100 * found.accuracy:.1f}%: the lower that is, the more the suggestions are "
        "guesses."
    )
    if n:
        rows = [
            [s.line, s.label, f"{s.suggested} ({s.suggested_probability:.2f})", f"{s.label_probability:.2f}",
             " ".join(s.example.split())[:70]]
            for s in found.suspects[: args.top]
        ]  # fmt: skip
        print()
        print(listing(["line", "label", "suggested (p)", "p(label)", "example"], rows, n, bool(args.output), [0, 3]))
    if args.output:
        print(f"wrote {found.write_csv(args.output)}")
    return 0


def _update(args: argparse.Namespace) -> int:
    from tunesmith.cli.models import run_update

    return run_update(args)


COMMANDS = {
    "train": _train,
    "validate": _validate,
    "eval": _eval,
    "predict": _predict,
    "generate": _generate,
    "export": _export,
    "models": _models,
    "update": _update,
    "serve": _serve,
    "ui": _ui,
    "config": _config,
    "completion": _completion,
    "check-labels": _check_labels,
    "label-next": label_next_command,
    "learn": learn_command,
    "plan": plan_command,
    "tune": tune_command,
    "kb": kb_command,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.store:
        os.environ["TUNESMITH_STORE"] = args.store
    try:
        return COMMANDS[args.command](args)
    except DataError as exc:
        print(f"tunesmith: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, TunesmithError) as exc:
        print(f"tunesmith: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the output went to a pager or `head` that stopped reading
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
