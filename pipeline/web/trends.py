"""Trends: label shares per period, raw and corrected, with 95 % intervals; CSV of exactly what is shown."""
from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from pipeline.reporting.trends import thread_floor
from pipeline.store.browse import BrowseIndex
from pipeline.web.common import BadRequest, choice, env, kinds, opt_date, opt_prob, render
from pipeline.web.state import TrendQuery

router = APIRouter()
PERIODS = ("month", "quarter", "year")


def _query(index: BrowseIndex, by: str | None, kind: list[str], thread: str | None, since: str | None,
           until: str | None, min_confidence: str | None) -> TrendQuery:
    if thread and not index.has_thread(thread):
        raise BadRequest(f"thread: no thread {thread!r} in the store")
    q = TrendQuery(by=choice(by, PERIODS, "by") or "month", kinds=kinds(kind), thread_id=thread or None,
                   since=opt_date(since, "since"), until=opt_date(until, "until"),
                   min_confidence=opt_prob(min_confidence, "min_confidence"))
    if q.since and q.until and q.since > q.until:
        raise BadRequest("since is after until")
    return q


def _chart_data(frame: Any) -> dict[str, Any]:
    """Per target, the rows the chart draws (NaN as null)."""
    out: dict[str, Any] = {}
    for rec in frame.to_dict("records"):
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        clean["too_few"] = bool(clean["too_few"])
        out.setdefault(rec["target"], []).append(clean)
    return out


@router.get("/trends", response_class=HTMLResponse)
def trends_page(request: Request, by: str | None = None, kind: list[str] = Query(default=[]),
                thread: str | None = None, since: str | None = None, until: str | None = None,
                min_confidence: str | None = None) -> HTMLResponse:
    dash = request.app.state.dash
    current = dash.current()
    q = _query(current[1], by, kind, thread, since, until, min_confidence)
    view = dash.trends(q, current) if dash.has_predictions(current[1]) else None
    query = str(request.url.query)
    html = view.rendered.get(query) if view is not None else None
    if html is None:  # the charts' data and the table are rendered once per cached view and address
        html = env.get_template("trends_results.html").render(
            dash=dash, view=view, charts=_chart_data(view.frame) if view is not None else {}, csv_query=query,
            min_threads=thread_floor(dash.min_threads, [q.thread_id] if q.thread_id else None))
        if view is not None:
            view.rendered[query] = html
    return render(request, "trends.html", q=q, periods=PERIODS, results_html=Markup(html))


@router.get("/trends.csv")
def trends_csv(request: Request, by: str | None = None, kind: list[str] = Query(default=[]),
               thread: str | None = None, since: str | None = None, until: str | None = None,
               min_confidence: str | None = None) -> Response:
    from pipeline.csvsafe import safe_frame

    dash = request.app.state.dash
    current = dash.current()
    if not dash.has_predictions(current[1]):
        raise BadRequest(dash.no_predictions())
    q = _query(current[1], by, kind, thread, since, until, min_confidence)
    view = dash.trends(q, current)
    if "csv" not in view.rendered:
        view.rendered["csv"] = safe_frame(view.frame).to_csv(index=False)
    text = view.rendered["csv"]
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="trends_{q.by}.csv"'})
