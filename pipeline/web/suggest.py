"""Label next: suggest's uncertainty ranking of the unlabelled classified items, each linked to its thread."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pipeline.web.common import opt_page, pages, render

router = APIRouter()


@router.get("/suggest", response_class=HTMLResponse)
def suggest_page(request: Request, page: str | None = None) -> HTMLResponse:
    dash = request.app.state.dash
    current = dash.current()
    ranked = dash.ranking(current) if dash.has_predictions(current[1]) else []
    nav = pages(len(ranked), opt_page(page))
    rows = ranked[nav["offset"]: nav["offset"] + nav["size"]]
    found = current[1].items_by_id([r["item_id"] for r in rows])
    return render(request, "suggest.html", nav=nav, rows=[{**r, **found.get(r["item_id"], {})} for r in rows],
                  gold=dash.gold)
