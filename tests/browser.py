"""Render a report in headless Chromium and read back what a person would see: whether anything runs past the
page's edge, and each legend swatch's computed colour beside its series' (a stylesheet rule can override an SVG
fill attribute, which no parser notices). Also takes the screenshots kept in docs/screenshots/.

    python -m tests.browser REPORT.html --out docs/screenshots/NAME   # NAME-1280.png and NAME-390.png
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

WIDTHS = (1280, 390)  # a laptop and a phone
MAX_HEIGHT = 12_000

CHECK = """<script>
addEventListener('load', () => {
  const W = document.documentElement.clientWidth;
  const out = {width: W, scrollWidth: document.documentElement.scrollWidth,
               height: document.documentElement.scrollHeight, overflow: [], swatches: []};
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('details:not([open])') || el.id === 'tunesmith-check') continue;
    const box = el.parentElement && el.parentElement.closest('.scroll');
    if (box) continue;  // inside a box that scrolls sideways by design: the box itself is checked
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > W + 1 || r.left < -1) {
      const cls = typeof el.className === 'string' ? el.className : (el.className.baseVal || '');
      const chart = el.closest('svg');
      const where = chart ? ` in "${chart.getAttribute('aria-label')}"` : '';
      out.overflow.push(`${el.tagName.toLowerCase()}.${cls} "${el.textContent.slice(0, 30)}"${where} ` +
                        `${Math.round(r.left)}..${Math.round(r.right)}`);
    }
  }
  const paint = e => { const s = getComputedStyle(e); return s.fill !== 'none' ? s.fill : s.stroke; };
  for (const sw of document.querySelectorAll('rect.swatch')) {
    const name = sw.getAttribute('data-series');
    const drawn = [...sw.closest('svg').querySelectorAll('[data-series]')]
      .filter(e => e !== sw && !e.classList.contains('swatch') && e.getAttribute('data-series') === name);
    out.swatches.push({series: name, swatch: getComputedStyle(sw).fill, drawn: drawn.map(paint)});
  }
  const pre = document.createElement('pre');
  pre.id = 'tunesmith-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium() -> str:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("no Chromium found: `make install` installs the Debian package chromium-headless-shell")


def _run(args: list[str], profile: str) -> str:
    cmd = [chromium(), "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}",
           "--virtual-time-budget=5000", *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def inspect(report: Path, width: int) -> dict[str, Any]:
    """The page at ``width`` px: overflowing elements, page size and each swatch's colours (computed)."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
        dom = _run([f"--window-size={width},900", "--dump-dom", page.as_uri()], str(Path(tmp) / "profile"))
    found = re.search(r'<pre id="tunesmith-check">(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError(f"the check script did not run on {report}")
    return json.loads(html.unescape(found.group(1)))


def screenshot(report: Path, width: int, out: Path, height: int | None = None) -> Path:
    height = min(height or inspect(report, width)["height"], MAX_HEIGHT)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        _run([f"--window-size={width},{height}", f"--screenshot={out}", report.resolve().as_uri()], tmp)
    return out


def shoot(report: Path, stem: Path) -> list[Path]:
    """Screenshots at every width in WIDTHS (STEM-1280.png, STEM-390.png), in 256 colours to keep docs/ small."""
    from PIL import Image

    paths = [screenshot(report, w, stem.with_name(f"{stem.name}-{w}.png")) for w in WIDTHS]
    for path in paths:
        Image.open(path).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path, help="a report.html (or tune_report.html)")
    ap.add_argument("--out", type=Path, required=True, help="path stem of the screenshots")
    args = ap.parse_args()
    for path in shoot(args.report, args.out):
        print(path)


if __name__ == "__main__":
    main()
