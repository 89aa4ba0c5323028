"""The label-next and learn commands: spending labels well (active learning)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tunesmith.cli.table import listing

STRATEGY_HELP = (
    "diverse (the default for texts): the most uncertain of each k-means cluster of the uncertain examples (no batch "
    "of near-twins); margin (the default for images): the smallest gap between the two likeliest classes; entropy: "
    "the most spread probabilities; random: the baseline"
)

EXAMPLES = {
    "label-next": "  tunesmith label-next runs/RUN --pool unlabelled.csv --k 50 --output to_label.csv\n"
    "  tunesmith label-next my.yaml --pool unlabelled.csv --strategy margin\n"
    "  tunesmith label-next minilm-l6 --pool tickets.csv --k 30     (no labels yet: covers the pool's clusters)\n"
    "  tunesmith label-next runs/IMAGES-RUN --pool photos/ --k 40 --output to_label.csv   (a folder of images)",
    "learn": "  tunesmith learn my.yaml --pool labelled_pool.csv --rounds 5 --k 50 --oracle-column label\n"
    "  tunesmith learn my.yaml --pool pool.csv --rounds 3 --k 20 --baseline   (diverse picks against random)",
}


def add_parsers(sub: Any) -> None:
    n = sub.add_parser("label-next", help="the unlabelled examples whose labels would help most (active learning)")
    n.add_argument(
        "source",
        help="a run directory or registered model (its model scores the pool), a config file (a linear model on its "
        "labelled data), or a model name/folder when nothing is labelled yet",
    )
    n.add_argument(
        "--pool",
        required=True,
        help="unlabelled examples, labelled ones skipped: texts in a CSV, JSONL or Parquet table; images in a folder "
        "(sub-folders name labels), a listing of paths, an .npz or IDX file",
    )
    n.add_argument("--k", type=int, default=50, help="how many examples to pick (default 50)")
    n.add_argument(
        "--output", help="write the picks to this CSV: the pool's columns, an empty label column, the reason"
    )
    n.add_argument(
        "--text-column",
        dest="input_column",
        metavar="COLUMN",
        help="the pool's text column (default: the config's data.text_column, or text)",
    )
    n.add_argument(
        "--path-column",
        dest="input_column",
        metavar="COLUMN",
        help="an image listing's path column (default: the config's data.path_column, or path)",
    )
    n.add_argument("--label-column", help="the pool's label column (default: the config's data.label_column, or label)")
    _picking(n)
    n.add_argument("--top", type=int, default=20, help="picks to print (all go to --output)")

    le = sub.add_parser("learn", help="the active-learning loop on a pool with known labels: a learning curve")
    le.add_argument("config", help="a config with data.train (the labels to start from) and data.validation")
    le.add_argument(
        "--pool",
        required=True,
        help="examples (a table of texts; images as for label-next) whose labels are revealed as they are picked",
    )
    le.add_argument("--rounds", type=int, default=5, help="pick-and-retrain rounds after the first training")
    le.add_argument("--k", type=int, default=50, help="examples picked a round")
    le.add_argument(
        "--oracle-column",
        default="label",
        help="the pool's column holding the true labels (images: an .npz's labels array or "
        "a folder's sub-folder names serve as it)",
    )
    le.add_argument(
        "--baseline", action="store_true", help="run the same loop with random picks too and draw both curves"
    )
    le.add_argument(
        "--warm",
        action="store_true",
        help="start each round from the previous round's trained weights (full or LoRA runs) instead of the "
        "pre-trained model",
    )
    le.add_argument("--out", help="folder for the rounds and the report (default OUTPUT_DIR/learn-TIME-STRATEGY)")
    _picking(le)


def _picking(p: Any) -> None:
    """What label-next and learn pick with: the strategy, the near-duplicate threshold, the seed; config overrides."""
    p.add_argument("--strategy", default=None, choices=("margin", "entropy", "diverse", "random"), help=STRATEGY_HELP)
    p.add_argument(
        "--near",
        type=float,
        default=None,
        help="cosine similarity of the embeddings from which a row counts as a near-duplicate of a training example "
        "or of another pick (default: 0.95 for texts, 0.98 for images; 1 sets aside exact twins only)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for k-means and random picks")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")


def label_next_command(args: argparse.Namespace) -> int:
    from tunesmith import api

    sel = api.label_next(
        args.source, args.pool, args.k, args.strategy, args.seed, args.input_column, args.label_column, args.set,
        near=args.near,
    )  # fmt: skip
    aside = "; ".join(f"{n} {why}" for why, n in sel.set_aside.items())
    print(
        f"{len(sel.picks)} of {sel.candidates} candidate {sel.pool.unit} of {sel.pool.path} to label next "
        f"({sel.strategy}; scored by {sel.scorer})." + (f" Set aside: {aside}." if aside else "")
    )
    rows = [[sel.pool.lines[i], sel.pool.shown(i), p.reason] for p, i in zip(sel.picks[: args.top], sel.indices)]
    print()
    print(listing([sel.pool.line_word, sel.shown_as, "why"], rows, len(sel.picks), bool(args.output), right=[0]))
    if args.output:
        print(f"wrote {sel.write_csv(args.output)}: fill in its {sel.pool.label_column!r} column")
    return 0


def learn_command(args: argparse.Namespace) -> int:
    from tunesmith import api

    def said(r: Any) -> None:
        lo, hi = r.accuracy_ci
        print(
            f"{r.strategy} round {r.round}: {r.labels} labels, accuracy {100 * r.accuracy:.1f}% "
            f"(95% CI {100 * lo:.1f} .. {100 * hi:.1f}), {r.seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    res = api.learn(
        args.config, args.pool, args.rounds, args.k, args.oracle_column, args.strategy, args.seed, args.out,
        args.set, on_round=said, baseline=args.baseline, near=args.near, warm=args.warm,
    )  # fmt: skip
    print(res.summary())
    print(f"learning curve: {res.folder / 'learning_curve.json'}; report: {res.report_html}")
    return 0
