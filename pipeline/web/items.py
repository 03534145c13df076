"""Items: a filterable, server-side paginated table; CSV / JSONL of every matching prediction record."""
from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from pipeline.store.browse import COUNT_CAP, SORTS, ItemFilter, Schema
from pipeline.web.common import BadRequest, choice, kinds, opt_date, opt_page, opt_prob, pages, render

router = APIRouter()


def _filter(schema: Schema, target: str | None, label: str | None, conf_min: str | None, conf_max: str | None,
            kind: list[str], thread: str | None, since: str | None, until: str | None, q: str | None) -> ItemFilter:
    target = choice(target, ["sentiment", *schema.targets], "target")
    classes = schema.stance if target not in (None, "sentiment") else schema.sentiment
    low, high = opt_prob(conf_min, "conf_min"), opt_prob(conf_max, "conf_max")
    if low is not None and high is not None and low > high:
        raise BadRequest(f"conf_min {low:g} is above conf_max {high:g}: no item can match")
    return ItemFilter(target=None if target == "sentiment" else target, label=choice(label, classes, "label"),
                      conf_min=low, conf_max=high,
                      kinds=kinds(kind), thread_id=thread or None, since=opt_date(since, "since"),
                      until=opt_date(until, "until"), text=(q or "").strip() or None)


@router.get("/items", response_class=HTMLResponse)
def items_page(request: Request, target: str | None = None, label: str | None = None, conf_min: str | None = None,
               conf_max: str | None = None, kind: list[str] = Query(default=[]), thread: str | None = None,
               since: str | None = None, until: str | None = None, q: str | None = None, sort: str | None = None,
               page: str | None = None) -> HTMLResponse:
    _, index = request.app.state.dash.current()
    f = _filter(index.schema, target, label, conf_min, conf_max, kind, thread, since, until, q)
    sort = choice(sort, list(SORTS), "sort") or "date"
    total = index.count_items(f)
    nav = pages(min(total, COUNT_CAP), opt_page(page))
    rows = index.items_page(f, nav["offset"], nav["size"], sort)
    return render(request, "items.html", f=f, target=target or "sentiment", sort=sort, total=total,
                  capped=total > COUNT_CAP, nav=nav, rows=rows, schema=index.schema, sorts=list(SORTS),
                  raw_query=str(request.url.query))


@router.get("/items.{fmt}")
def items_download(request: Request, fmt: str, target: str | None = None, label: str | None = None,
                   conf_min: str | None = None, conf_max: str | None = None, kind: list[str] = Query(default=[]),
                   thread: str | None = None, since: str | None = None, until: str | None = None,
                   q: str | None = None) -> StreamingResponse:
    from pipeline.csvsafe import safe_frame
    from pipeline.store.records import records_frame

    dash = request.app.state.dash
    fmt = choice(fmt, ["csv", "jsonl"], "format") or "csv"
    _, index = dash.current()
    if not dash.has_predictions(index):
        raise BadRequest(dash.no_predictions())
    f = _filter(index.schema, target, label, conf_min, conf_max, kind, thread, since, until, q)

    def body() -> Iterator[str]:
        header = True
        for chunk in index.iter_records(f):  # the index the request started with, to its end
            if fmt == "jsonl":
                yield "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk)
            else:
                yield safe_frame(records_frame(chunk)).to_csv(index=False, header=header)
                header = False

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(body(), media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="items.{fmt}"'})
