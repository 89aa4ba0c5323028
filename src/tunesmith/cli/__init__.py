"""tunesmith's command line. Subcommands map one to one onto tunesmith.api; exit 0 ok, 2 bad input, 1 other."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tunesmith.cli.plan import add_parsers as add_plan_parsers
from tunesmith.cli.plan import plan_command, train_seeds, tune_command
from tunesmith.errors import ConfigError, DataError, TunesmithError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunesmith", description="Fine-tune a pre-trained model for your task.")
    p.add_argument("--store", help="model store folder (default $TUNESMITH_STORE or ~/.local/share/tunesmith/store)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="check the data, fine-tune, evaluate, write a run directory")
    t.add_argument("config")
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
    v.add_argument("config")
    v.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    v.add_argument("--json", action="store_true")

    e = sub.add_parser("eval", help="metrics of a run's model on a labelled file")
    e.add_argument("run")
    e.add_argument("--data", required=True)
    e.add_argument("--json", action="store_true")

    pr = sub.add_parser("predict", help="predict labels (or generate answers) for every row of a file")
    pr.add_argument("run")
    pr.add_argument("--input", required=True)
    pr.add_argument("--output", required=True)
    _generation_options(pr)

    g = sub.add_parser("generate", help="answer a prompt with a causal-lm run, streaming to the terminal")
    g.add_argument("run")
    g.add_argument("--prompt", required=True, help="the user's message (or raw prompt for prompt/completion runs)")
    g.add_argument("--system", help="a system message (chat runs)")
    _generation_options(g)

    x = sub.add_parser("export", help="merge a LoRA adapter into full weights, or export a classifier to ONNX")
    x.add_argument("run")
    how = x.add_mutually_exclusive_group(required=True)
    how.add_argument("--merge", action="store_true", help="merge the adapter into the base weights (RUN/model)")
    how.add_argument("--onnx", action="store_true", help="ONNX export (RUN/onnx), kept only after a parity check")
    x.add_argument("--no-quantize", action="store_true", help="with --onnx: fp32 instead of int8 weights")

    _models_parser(sub)
    sv = sub.add_parser("serve", help="serve a run or registered model over HTTP (FastAPI, token required)")
    sv.add_argument("run", help="a run directory or a registered model, e.g. support-intents@prod")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--token-file", help="file holding the bearer token (else $TUNESMITH_TOKEN; else generated)")
    sv.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto", help="auto: ONNX when exported")
    sv.add_argument("--max-batch", type=int, default=32, help="inputs per model call")
    sv.add_argument("--max-wait-ms", type=float, default=5.0, help="longest wait to fill a batch")
    sv.add_argument("--max-queue", type=int, default=256, help="inputs waiting before 429")
    sv.add_argument("--max-inputs", type=int, default=64, help="inputs per request")
    sv.add_argument("--max-input-chars", type=int, default=10_000, help="characters per text input")
    sv.add_argument("--max-body-bytes", type=int, default=None, help="request body limit (1 MiB; images 16 MiB)")
    sv.add_argument("--timeout", type=float, default=30.0, help="seconds per request before 504")
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
    c = sub.add_parser("config", help="list every config key with its default and meaning")
    c.add_argument("--markdown", action="store_true")
    return p


def _models_parser(sub: Any) -> None:
    m = sub.add_parser("models", help="registered versions (register, promote, list, show, diff, rm) and the catalog")
    ms = m.add_subparsers(dest="models_command")
    ms.add_parser("catalog", help="the offline model catalog (also `tunesmith models` alone)")
    r = ms.add_parser("register", help="store a finished run as the next version of NAME")
    r.add_argument("run")
    r.add_argument("--name", required=True)
    r.add_argument("--promote", metavar="ALIAS", help="also point NAME@ALIAS at the new version")
    p = ms.add_parser("promote", help="point an alias (prod, staging, ...) at a version, through the gate")
    p.add_argument("ref", help="e.g. support-intents@v3")
    p.add_argument("--to", required=True, metavar="ALIAS")
    p.add_argument("--max-regression", type=float, default=None)
    p.add_argument("--force", action="store_true", help="move the alias even when the gate refuses")
    li = ms.add_parser("list", help="registered versions")
    li.add_argument("name", nargs="?")
    li.add_argument("--all", action="store_true", help="include removed versions")
    li.add_argument("--json", action="store_true")
    sh = ms.add_parser("show", help="config, metrics, data fingerprints, lineage and history of a version")
    sh.add_argument("ref")
    sh.add_argument("--json", action="store_true")
    d = ms.add_parser("diff", help="metrics of two versions side by side on every evaluation set either has seen")
    d.add_argument("a")
    d.add_argument("b")
    d.add_argument("--json", action="store_true")
    rm = ms.add_parser("rm", help="remove a version (soft: `restore` brings it back)")
    rm.add_argument("ref")
    rs = ms.add_parser("restore", help="bring back a removed version")
    rs.add_argument("ref")


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
    elif "perplexity" in m:
        scores = " ".join(f"{k}={m[k]:.4f}" for k in ("token_f1", "rouge_l", "exact_match") if k in m)
        print(f"n={m['n']} loss={m['loss']:.4f} perplexity={m['perplexity']:.2f} {scores}".rstrip())
    else:
        print(f"n={m['n']} accuracy={m['accuracy']:.4f} macro_f1={m['macro_f1']:.4f} ece={m['ece']:.4f}")
        for lab, r in m["per_class"].items():
            print(
                f"  {lab:<20} precision={r['precision']:.3f} recall={r['recall']:.3f} f1={r['f1']:.3f} "
                f"support={r['support']}"
            )
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
    for piece in model.stream(args.prompt, system=args.system, **kwargs):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
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
    folder = api.merge_adapter(args.run)
    print(f"merged weights in {folder} (Hugging Face format); outputs checked against base + adapter")
    return 0


def _models(args: argparse.Namespace) -> int:
    from tunesmith.cli.models import run_models

    if args.models_command not in (None, "catalog"):
        return run_models(args)
    from tunesmith.api import base_models as list_models

    print(f"{'name':<14}{'task':<22}{'params':<8}{'installed':<10}description")
    for r in list_models():
        print(f"{r['name']:<14}{r['task']:<22}{r['params']:<8}{r['installed']:<10}{r['description']}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from tunesmith.api import config_reference as describe

    if args.markdown:
        print("| key | default | meaning |\n|---|---|---|")
    for key, default, help_ in describe():
        print(f"| `{key}` | `{default}` | {help_} |" if args.markdown else f"{key:<34}{default:<14}{help_}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tunesmith import api

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
    print(
        f"serving {args.run} ({model.manifest.get('task')}, backend {model.backend}) on "
        f"http://{args.host}:{args.port}; token from {source}",
        file=sys.stderr,
    )
    if source == "generated for this run":
        print(f"token: {token}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
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
    "config": _config,
    "plan": plan_command,
    "tune": tune_command,
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


if __name__ == "__main__":
    sys.exit(main())
