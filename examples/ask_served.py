"""Serve the newest run trained with a knowledge base and ask it one question over HTTP, as a client would:
the answer comes with the passages it was given. Used by `make demo-rag`.

    python examples/ask_served.py "How do I make a Python script executable on Unix?" [--run runs/RUN]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def newest_run(output_dir: Path) -> Path:
    runs = [p.parent for p in output_dir.glob("*-causal-lm-*/manifest.json")
            if json.loads(p.read_text()).get("knowledge_base")]  # fmt: skip
    if not runs:
        sys.exit(f"no finished causal-lm run with a knowledge base under {output_dir}: make demo-rag trains one")
    return max(runs, key=lambda p: p.stat().st_mtime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("question")
    p.add_argument("--run", help="default: the newest run with a knowledge base under runs/")
    a = p.parse_args()
    run = Path(a.run) if a.run else newest_run(Path("runs"))
    token, port = secrets.token_urlsafe(24), free_port()
    tunesmith = Path(sys.executable).with_name("tunesmith")
    server = subprocess.Popen([str(tunesmith), "serve", str(run), "--port", str(port)],
                              env={**os.environ, "TUNESMITH_TOKEN": token}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        body = json.dumps({"prompt": a.question, "max_new_tokens": 128}).encode()
        req = urllib.request.Request(f"{url}/v1/generate", body, {"Authorization": f"Bearer {token}",
                                                                  "Content-Type": "application/json"})  # fmt: skip
        answer = json.loads(urllib.request.urlopen(req, timeout=300).read())
    finally:
        server.terminate()
        server.wait(30)
    print(f"served {run} at {url}\n\nQ: {a.question}\nA: {answer['text']}\n\nsources:")
    for i, s in enumerate(answer["sources"], 1):
        print(f"  [{i}] {s['source']}:{s['lines'][0]}-{s['lines'][1]}  {s['heading']}  (score {s['score']:.3f})")


if __name__ == "__main__":
    main()
