"""The dashboard application: :func:`create_app` builds the FastAPI app over one store and one model."""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from pipeline.errors import UserError
from pipeline.web import items, overview, suggest, threads, trends
from pipeline.web.common import error_page, static_files
from pipeline.web.state import Dashboard

log = logging.getLogger("threadstance.web")


def create_app(store_path: str | Path, model_dir: str | Path | None = None, *, n_boot: int = 1000,
               min_items: int = 30, gold: str | Path | None = None) -> FastAPI:
    """The dashboard over ``store_path`` (opened read-only) for the model ``model_dir`` (a model folder or
    a model_version; None: models/default, else the store's latest). ``gold``: a label file whose items
    the label-next page leaves out. Raises UserError for a missing or unreadable store."""
    dash = Dashboard(store_path, model_dir, n_boot=n_boot, min_items=min_items, gold=gold)
    app = FastAPI(title="threadstance", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dash = dash
    files = static_files()

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in files:  # a fixed set of names: the request never becomes a path
            raise HTTPException(404, "no such file")
        body, mime = files[name]
        return Response(body, media_type=mime, headers={"Cache-Control": "public, max-age=86400"})

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> HTMLResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return error_page(request, exc.status_code, title, str(exc.detail) if exc.detail else title)

    @app.exception_handler(RequestValidationError)
    def bad_query(request: Request, exc: RequestValidationError) -> HTMLResponse:
        where = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors()) or "the query"
        return error_page(request, 400, "Bad request", f"cannot read {where} from the address")

    @app.exception_handler(UserError)
    def user_error(request: Request, exc: UserError) -> HTMLResponse:
        return error_page(request, 400, "Bad request", str(exc))

    @app.exception_handler(Exception)
    def internal(request: Request, exc: Exception) -> HTMLResponse:
        log.exception("dashboard error on %s", request.url.path)
        return error_page(request, 500, "Internal error", f"the page could not be built ({type(exc).__name__}); "
                          "the server log has the details")

    for module in (overview, trends, threads, items, suggest):
        app.include_router(module.router)
    return app
