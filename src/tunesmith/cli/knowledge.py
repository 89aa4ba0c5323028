"""The kb commands: build, search, list, remove and register knowledge bases."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from typing import Any

from tunesmith.cli.table import table

EXAMPLES = (
    "  tunesmith kb build docs/ handbook.md --name handbook         index documents (again: only changed files)\n"
    '  tunesmith kb search handbook "how do I reset a password" --k 3\n'
    "  tunesmith kb list\n"
    "  tunesmith kb pairs handbook --output pairs.jsonl                  (title, section) pairs for task: embedding\n"
    "  tunesmith kb register handbook                                a version in the model store (handbook@v1)\n"
    "  tunesmith kb rm handbook"
)


def add_parsers(sub: Any, parser_class: Any) -> None:
    kb = sub.add_parser(
        "kb",
        help="knowledge bases: index documents for retrieval (build, search, list, register, rm)",
        epilog="examples:\n" + EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kb.add_argument("--root", help="knowledge base folder (default $TUNESMITH_KNOWLEDGE or "
                    "~/.local/share/tunesmith/knowledge)")  # fmt: skip
    ks = kb.add_subparsers(dest="kb_command", required=True, metavar="COMMAND", parser_class=parser_class)
    b = ks.add_parser("build", help="read, chunk and embed documents; a rebuild embeds only changed files")
    b.add_argument("docs", nargs="+", help="files and folders: .txt, .md, .rst (and Sphinx .rst.txt), .html")
    b.add_argument("--name", required=True, help="the knowledge base's name")
    b.add_argument("--encoder", help="a catalog name, model folder or embedding run (default minilm-l6; kept on "
                   "rebuilds)")  # fmt: skip
    b.add_argument("--chunk-size", type=int, help="characters per chunk, whole paragraphs of one section (default 800)")
    b.add_argument("--overlap", type=int, help="characters a chunk repeats from the one before (default 100)")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    s = ks.add_parser("search", help="the chunks nearest a query, with their sources")
    s.add_argument("name", help="a knowledge base name, folder, or registered version (NAME@v1)")
    s.add_argument("query", nargs="+", help="what to look for (several queries: several searches)")
    s.add_argument("--k", type=int, default=5, help="chunks to return (default 5)")
    s.add_argument("--json", action="store_true", help="print the hits as JSON lines")
    pa = ks.add_parser("pairs", help="(section title, its first chunk) pairs for tuning an encoder (task: embedding)")
    pa.add_argument("name", help="a knowledge base name, folder, or registered version (NAME@v1)")
    pa.add_argument("--output", required=True, help="JSONL file to write: query, passage, source")
    ks.add_parser("list", help="the knowledge bases under the root")
    r = ks.add_parser("rm", help="remove a knowledge base (its registered versions stay in the store)")
    r.add_argument("name", help="the knowledge base to remove")
    g = ks.add_parser("register", help="store the current build as the next version in the model store")
    g.add_argument("name", help="the knowledge base to register")
    g.add_argument("--as", dest="as_name", help="the name in the store (default: the knowledge base's name)")


def kb_command(args: argparse.Namespace) -> int:
    from tunesmith import api

    if args.kb_command == "build":
        result = api.kb_build(args.docs, args.name, args.encoder, args.chunk_size, args.overlap, args.root)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
            return 0
        for p in result.report.problems:
            print(f"  {p}", file=sys.stderr)
        n = {k: len(v) for k, v in result.files.items()}
        kept = n["added"] + n["changed"] + n["unchanged"]
        print(
            f"knowledge base {result.name} (build {result.version}, fingerprint {result.fingerprint}): "
            f"{result.chunks} chunks from {kept} files"
        )
        print(
            f"  files: {n['added']} added, {n['changed']} changed, {n['unchanged']} unchanged, {n['removed']} "
            f"removed; {result.chunks_embedded} chunks embedded in {result.seconds:.1f} s"
        )
        if result.rebuilt_all:
            print(f"  everything was embedded again: {result.rebuilt_all}")
        if result.report.warnings:
            print(f"  {len(result.report.warnings)} warning(s) above")
        return 0
    if args.kb_command == "search":
        return _search(args)
    if args.kb_command == "list":
        rows = api.kb_list(args.root)
        if not rows:
            print("no knowledge bases yet: tunesmith kb build DOCS... --name NAME")
            return 0
        print(table(
            ["name", "build", "files", "chunks", "encoder", "chunk size", "built", "fingerprint"],
            [[r["name"], r["version"], r["files"], r["chunks"], r["encoder"], r["chunk_size"],
              time.strftime("%Y-%m-%d %H:%M", time.localtime(r["built_at"])) if r["built_at"] else "",
              r["fingerprint"]] for r in rows],
            right=(1, 2, 3, 5),
        ))  # fmt: skip
        return 0
    if args.kb_command == "pairs":
        n = api.kb_pairs(args.name, args.output, args.root)
        print(f"wrote {n} (query, passage) pairs to {args.output}")
        return 0
    if args.kb_command == "rm":
        api.kb_remove(args.name, args.root)
        print(f"removed the knowledge base {args.name}")
        return 0
    row = api.kb_register(args.name, args.as_name, args.root)
    print(f"registered {row['name']}@v{row['version']} (knowledge base {args.name}, fingerprint "
          f"{row['manifest']['knowledge_base']['fingerprint']})")  # fmt: skip
    return 0


def _search(args: argparse.Namespace) -> int:
    from tunesmith import api

    queries = [" ".join(args.query)] if not args.json else args.query
    found = api.kb_search(args.name, queries, args.k, args.root)
    for query, hits in zip(queries, found):
        if args.json:
            for rank, h in enumerate(hits, 1):
                print(json.dumps({"query": query, "rank": rank, **h.to_dict()}, ensure_ascii=False))
            continue
        for rank, h in enumerate(hits, 1):
            print(f"{rank}. {h.score:.3f}  {h.where()}" + (f"  ({h.heading})" if h.heading else ""))
            print(textwrap.indent(textwrap.shorten(h.text, 300, placeholder=" ..."), "   "))
    return 0
