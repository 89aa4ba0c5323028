"""tunesmith's command line. Subcommands map one to one onto tunesmith.api; exit 0 ok, 2 bad input, 1 other."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tunesmith.errors import ConfigError, DataError, TunesmithError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunesmith", description="Fine-tune a pre-trained model for your task.")
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

    x = sub.add_parser("export", help="merge a LoRA run's adapter into full weights (RUN/model)")
    x.add_argument("run")
    x.add_argument("--merge", action="store_true", required=True, help="merge the adapter into the base weights")

    sub.add_parser("models", help="list the offline model catalog")
    c = sub.add_parser("config", help="list every config key with its default and meaning")
    c.add_argument("--markdown", action="store_true")
    return p


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

    if args.nproc > 1 and os.environ.get("LOCAL_RANK") is None:
        # Check in this process (nothing written on a fatal problem), then start the workers on one run dir.
        cfg = api.as_config(args.config, args.set)
        api.validate(cfg)
        run_dir = args.run_dir or (str(api._locate_run(cfg, args.resume, None)))
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
        from tunesmith.run import read_manifest

        _print_summary(read_manifest(Path(run_dir)), Path(run_dir))
        print(run_dir)
        return 0
    run = api.finetune(args.config, args.set, resume=args.resume, run_dir=args.run_dir)
    if run.manifest:
        _print_summary(run.manifest, run.path)
        print(run.path)
    return 0


def _print_summary(manifest: dict, run_dir: Path) -> None:
    from tunesmith.tasks import get_task

    for line in get_task(manifest["task"]).summary_lines(manifest, run_dir):
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
    if not hasattr(model, "stream"):
        raise ConfigError(f"{args.run}: generate needs a causal-lm run; this one is a classifier (use predict)")
    kwargs = _generation_kwargs(args)
    for piece in model.stream(args.prompt, system=args.system, **kwargs):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tunesmith import api

    folder = api.merge_adapter(args.run)
    print(f"merged weights in {folder} (Hugging Face format); outputs checked against base + adapter")
    return 0


def _models(args: argparse.Namespace) -> int:
    from tunesmith.models.catalog import list_models

    print(f"{'name':<14}{'task':<22}{'params':<8}{'installed':<10}description")
    for r in list_models():
        print(f"{r['name']:<14}{r['task']:<22}{r['params']:<8}{r['installed']:<10}{r['description']}")
    return 0


def _config(args: argparse.Namespace) -> int:
    from tunesmith.config import describe

    for key, default, help_ in describe():
        print(f"| `{key}` | `{default}` | {help_} |" if args.markdown else f"{key:<34}{default:<14}{help_}")
    return 0


COMMANDS = {
    "train": _train,
    "validate": _validate,
    "eval": _eval,
    "predict": _predict,
    "generate": _generate,
    "export": _export,
    "models": _models,
    "config": _config,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
