"""The report's page: one HTML file with its styles, Plotly's JavaScript (gzipped, unpacked by the
browser) and every figure inlined."""

from __future__ import annotations

import base64
import gzip
import json
from functools import lru_cache
from html import escape

from plotly.offline import get_plotlyjs

STYLE = """
:root { --ink: #1d2433; --muted: #5b6475; --line: #dde2ea; --accent: #3b6fd8; --bg: #f6f8fb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: #1d2433; color: white; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #c5ccda; }
nav { position: sticky; top: 0; z-index: 5; background: white; border-bottom: 1px solid var(--line);
      padding: 8px 32px; display: flex; gap: 18px; flex-wrap: wrap; }
nav a { color: var(--accent); text-decoration: none; }
main { padding: 8px 32px 48px; max-width: 1500px; }
section { background: white; border: 1px solid var(--line); border-radius: 8px;
          padding: 8px 20px 16px; margin: 18px 0; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 10px; text-align: left;
         vertical-align: top; }
table.facts th { color: var(--muted); font-weight: 500; white-space: nowrap; }
table.facts td { font-family: ui-monospace, monospace; word-break: break-all; }
pre.settings { background: var(--bg); padding: 8px; font-size: 12px; overflow: auto; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 12px; }
.figure { min-height: 300px; }
article.insight { border-top: 1px solid var(--line); padding: 4px 0 10px; }
.meta { color: var(--muted); }
.kind { background: #e8eefc; color: var(--accent); padding: 1px 8px; border-radius: 10px; }
.action { background: #f1f8ee; padding: 4px 8px; border-radius: 4px; }
.gallery { display: flex; flex-wrap: wrap; gap: 10px; }
figure.sample { margin: 0; width: 140px; font-size: 11px; color: var(--muted); }
figure.sample img { width: 96px; height: 96px; image-rendering: pixelated; object-fit: contain;
                    border: 1px solid var(--line); background: #fff; }
figure.sample img.heatmap { width: 40px; height: 40px; margin-left: 2px; }
.text-render { font-size: 11px; border: 1px solid var(--line); padding: 4px; height: 96px;
               overflow: hidden; }
footer { color: var(--muted); padding: 0 32px 24px; }
"""

_DRAW = """
(function () {
  var holders = document.querySelectorAll('div.figure');
  if (typeof DecompressionStream === 'undefined') {
    holders.forEach(function (holder) {
      holder.textContent = 'This browser cannot unpack the plots: open the report in a current ' +
        'Chrome, Edge, Firefox or Safari.';
    });
    return;
  }
  function unpack(id) {
    var packed = atob(document.getElementById(id).textContent);
    var bytes = Uint8Array.from(packed, function (c) { return c.charCodeAt(0); });
    return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip')))
      .text();
  }
  Promise.all([unpack('plotly-packed'), unpack('figures-packed')]).then(function (texts) {
    (0, eval)(texts[0]);
    var figures = JSON.parse(texts[1]);
    Object.keys(figures).forEach(function (element) {
      Plotly.newPlot(element, figures[element].data, figures[element].layout,
                     {responsive: true, displaylogo: false});
    });
  });
})();
"""


def _packed(text: str) -> str:
    """Text gzipped, in base64, for the page to unpack: a third of its size or less."""
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()


@lru_cache(maxsize=1)
def _packed_plotly() -> str:
    """plotly.min.js packed once per process: the page weighs 3 MB less for it."""
    return _packed(get_plotlyjs())


def render_page(
    *,
    title: str,
    subtitle: str,
    sections: list[tuple[str, str, str]],
    figures: list[tuple[str, str]],
) -> str:
    """The whole document from its sections (key, heading, HTML) and figures (element, JSON)."""
    nav = "".join(f'<a href="#{key}">{escape(heading)}</a>' for key, heading, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{escape(heading)}</h2>{html}</section>'
        for key, heading, html in sections
    )
    packed = _packed("{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in figures) + "}")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        "<footer>Written by latentsight; everything shown is read from the run directory.</footer>"
        f'<script type="application/gzip" id="figures-packed">{packed}</script>'
        f'<script type="application/gzip" id="plotly-packed">{_packed_plotly()}</script>'
        f"<script>{_DRAW}</script></body></html>\n"
    )
