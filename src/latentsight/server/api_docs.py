"""The dashboard API's reference page at ``/docs``, drawn from its OpenAPI schema with no script.

FastAPI's own pages load Swagger UI from a CDN, which a dashboard on a machine without network
cannot reach; this page needs nothing but the server.
"""

from __future__ import annotations

from html import escape
from typing import Any

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} API</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px 40px; color: #1d2433; max-width: 1100px; }}
h2 {{ font-size: 15px; margin: 22px 0 4px; font-family: ui-monospace, monospace; }}
.method {{ display: inline-block; min-width: 52px; color: white; background: #3b5bdb;
          border-radius: 3px; padding: 0 6px; margin-right: 6px; text-align: center; }}
.post {{ background: #2f9e44; }}
table {{ border-collapse: collapse; margin: 4px 0; }}
td, th {{ border-bottom: 1px solid #dde2ea; padding: 2px 10px; text-align: left; }}
code {{ font-family: ui-monospace, monospace; }}
.muted {{ color: #687186; }}
</style></head><body>
<h1>{title} API <span class="muted">{version}</span></h1>
<p>{description}</p>
<p class="muted">The machine-readable schema is at <a href="{schema_url}">{schema_url}</a>.</p>
{operations}
</body></html>
"""


def _schema_name(schema: dict[str, Any]) -> str:
    """A schema's model name (``SelectionOut``), its item's for arrays, else its type."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array" and "items" in schema:
        return f"list of {_schema_name(schema['items'])}"
    if "anyOf" in schema:
        return " or ".join(_schema_name(option) for option in schema["anyOf"])
    return str(schema.get("type", "any"))


def _parameters(operation: dict[str, Any]) -> str:
    rows = [
        f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
        f"<td>{escape(_schema_name(p.get('schema', {})))}</td>"
        f"<td>{'required' if p.get('required') else ''}</td>"
        f"<td>{escape(p.get('description') or p.get('schema', {}).get('description', ''))}</td></tr>"
        for p in operation.get("parameters", [])
    ]
    body = operation.get("requestBody", {}).get("content", {})
    for media, content in body.items():
        rows.append(
            f"<tr><td><i>body</i></td><td>{escape(media)}</td>"
            f"<td>{escape(_schema_name(content.get('schema', {})))}</td><td>required</td><td></td></tr>"
        )
    return f"<table>{''.join(rows)}</table>" if rows else ""


def _response(operation: dict[str, Any]) -> str:
    ok = operation.get("responses", {}).get("200", {}).get("content", {})
    kinds = [
        f"{escape(_schema_name(c['schema']))} ({escape(m)})" if c.get("schema") else escape(m)
        for m, c in ok.items()
    ]
    return f"<p class='muted'>Returns {', '.join(kinds)}.</p>" if kinds else ""


def api_reference(schema: dict[str, Any], schema_url: str) -> str:
    """The HTML page listing every operation of ``schema``: method, path, what it does, its
    parameters and what it returns."""
    info = schema.get("info", {})
    operations = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            text = operation.get("description") or operation.get("summary", "")
            operations.append(
                f"<h2><span class='method {method}'>{method.upper()}</span>{escape(path)}</h2>"
                f"<p>{escape(text)}</p>{_parameters(operation)}{_response(operation)}"
            )
    return PAGE.format(
        title=escape(info.get("title", "API")),
        version=escape(str(info.get("version", ""))),
        description=escape(info.get("description", "")),
        schema_url=escape(schema_url),
        operations="\n".join(operations),
    )
