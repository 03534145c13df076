"""Shared pieces of the dashboard pages: templates, query-string parsing, badges and evidence highlighting."""
from __future__ import annotations

import math
from datetime import date
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline.errors import UserError
from pipeline.store.browse import KINDS

PAGE_SIZE = 50

env = Environment(loader=PackageLoader("pipeline.web", "templates"), autoescape=select_autoescape(["html", "j2"]),
                  trim_blocks=True, lstrip_blocks=True)


class BadRequest(UserError):
    """A query-string value the page cannot use (shown as a 400 page)."""


def pct(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{100 * float(x):.1f} %"


env.filters["pct"] = pct
env.filters["num"] = lambda x: f"{x:,}" if isinstance(x, int) else ("–" if x is None else str(x))
env.filters["f3"] = lambda x: "–" if x is None else f"{float(x):.3f}"


def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """A page, or only its results block when htmx asks (``HX-Request``) and the template has one."""
    dash = request.app.state.dash
    partial = request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
    template = env.get_template(name)
    ctx = {"request": request, "dash": dash, "path": request.url.path, "query": str(request.url.query), **ctx}
    if partial and "results" in template.blocks:
        html = "".join(template.blocks["results"](template.new_context(ctx)))
    else:
        html = template.render(ctx)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    html = env.get_template("error.html").render(request=request, dash=request.app.state.dash, path="",
                                                 title=title, message=message, status=status)
    return HTMLResponse(html, status_code=status)


# ---- query-string values ----------------------------------------------------------------------------------
def opt_date(value: str | None, name: str) -> str | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise BadRequest(f"{name}: {value!r} is not a date (use YYYY-MM-DD)") from exc


def opt_prob(value: str | None, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        p = float(value)
    except ValueError as exc:
        raise BadRequest(f"{name}: {value!r} is not a number") from exc
    if not 0.0 <= p <= 1.0:
        raise BadRequest(f"{name}: {value!r} is not between 0 and 1")
    return p


def opt_page(value: str | None) -> int:
    if not value:
        return 1
    if not value.isdigit() or int(value) < 1 or int(value) > 10**7:
        raise BadRequest(f"page: {value!r} is not a page number")
    return int(value)


def kinds(values: list[str]) -> tuple[str, ...]:
    bad = [k for k in values if k and k not in KINDS]
    if bad:
        raise BadRequest(f"kind: {bad[0]!r} is not one of {', '.join(KINDS)}")
    return tuple(k for k in KINDS if k in values)


def choice(value: str | None, allowed: list[str] | tuple[str, ...], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise BadRequest(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def link(path: str, **params: Any) -> str:
    """``path?query`` with the non-empty parameters (lists repeat their key)."""
    pairs: list[tuple[str, Any]] = []
    for k, v in params.items():
        for x in v if isinstance(v, (list, tuple)) else [v]:
            if x not in (None, ""):
                pairs.append((k, x))
    return path + ("?" + urlencode(pairs) if pairs else "")


def pages(total: int, page: int, size: int = PAGE_SIZE) -> dict[str, Any]:
    last = max(1, math.ceil(total / size))
    return {"total": total, "page": page, "last": last, "prev": page - 1 if page > 1 else None,
            "next": page + 1 if page < last else None, "offset": (page - 1) * size, "size": size}


# ---- items ------------------------------------------------------------------------------------------------
def evidence_segments(text: str, record: dict[str, Any] | None) -> list[tuple[str, str | None]]:
    """``text`` cut into (piece, None) and (evidence sentence, "target: label, …") pieces; evidence whose
    offsets do not fit the text (a prediction of an earlier revision) is left out."""
    spans: list[list[Any]] = []
    for target, head in ((record or {}).get("stance") or {}).items():
        ev = head.get("evidence")
        if not ev:
            continue
        start, end = int(ev.get("start", -1)), int(ev.get("end", -1))
        if 0 <= start < end <= len(text) and text[start:end] == ev.get("text"):
            spans.append([start, end, [f"{target}: {head['label']}"]])
    spans.sort()
    merged: list[list[Any]] = []
    for s in spans:
        if merged and s[0] < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s[1])
            merged[-1][2] += s[2]
        else:
            merged.append(s)
    out: list[tuple[str, str | None]] = []
    pos = 0
    for start, end, labels in merged:
        if start > pos:
            out.append((text[pos:start], None))
        out.append((text[start:end], ", ".join(labels)))
        pos = end
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def probs_title(head: dict[str, Any]) -> str:
    return " · ".join(f"{c} {p:.2f}" for c, p in (head.get("probs") or {}).items())


env.globals.update(link=link, evidence_segments=evidence_segments, probs_title=probs_title)


def static_files() -> dict[str, tuple[bytes, str]]:
    """The dashboard's static files by name, read once from the package (a request never names a path):
    htmx, the page script and style, and plotly.min.js from the plotly package."""
    import plotly.offline

    base = resources.files("pipeline.web") / "static"
    out = {name: (base.joinpath(name).read_bytes(), mime) for name, mime in
           (("htmx.min.js", "text/javascript"), ("app.js", "text/javascript"), ("style.css", "text/css"))}
    out["plotly.min.js"] = (plotly.offline.get_plotlyjs().encode("utf-8"), "text/javascript")
    return out
