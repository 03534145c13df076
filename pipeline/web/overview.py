"""Overview: store counts, the served model's card summary and the last runs."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from pipeline.web.common import render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    dash = request.app.state.dash
    _, index = dash.current()
    with dash.store() as store:
        runs = store.runs(limit=10)
        versions = store.prediction_counts()
    return render(request, "overview.html", counts=index.counts(), runs=runs, versions=versions,
                  model=dash.model)
