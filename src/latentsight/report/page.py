"""The report's page: one HTML file with its styles, Plotly's JavaScript and every figure inlined."""

from __future__ import annotations

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
document.querySelectorAll('script[type="application/json"][data-figure]').forEach(function (s) {
  var figure = JSON.parse(s.textContent);
  Plotly.newPlot(s.dataset.figure, figure.data, figure.layout,
                 {responsive: true, displaylogo: false});
});
"""


def _json_in_html(payload: str) -> str:
    """JSON that cannot close the script element holding it."""
    return payload.replace("</", "<\\/")


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
    data = "".join(
        f'<script type="application/json" data-figure="{escape(element)}">'
        f"{_json_in_html(payload)}</script>"
        for element, payload in figures
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        "<footer>Written by latentsight; everything shown is read from the run directory.</footer>"
        f"{data}<script>{get_plotlyjs()}</script><script>{_DRAW}</script></body></html>\n"
    )
