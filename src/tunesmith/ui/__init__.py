"""``tunesmith ui``: the web dashboard over the workspace (see docs/ui.md). Same security as ``serve``: it binds
to this machine only unless told otherwise, and needs the token it prints."""

from __future__ import annotations

import sys


def run_dashboard(folders: list[str], host: str, port: int, token_file: str | None, max_upload_mb: int) -> int:
    """Serve the dashboard until interrupted; prints the address and the token to open it with."""
    import uvicorn

    from tunesmith import api
    from tunesmith.ui.app import create_app

    api.check_can_listen(host, port)
    ws = api.workspace(folders or ["."])
    token, source = api.load_token(host, token_file)
    app = create_app(ws, token, max_upload_mb << 20)
    shown = token if source == "generated for this run" else "(not shown)"
    print(
        "\n".join([
            f"tunesmith dashboard: http://{host}:{port}/",
            f"token: {shown}  (from {source}; the login page asks for it)",
            f"workspace: {ws.home}" + (f" (also reads {', '.join(str(r) for r in ws.folders.roots[1:])})"
                                       if len(ws.folders.roots) > 1 else ""),
            "Ctrl-C stops it; runs and jobs started from it keep going.",
        ]),
        file=sys.stderr,
        flush=True,
    )  # fmt: skip
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
