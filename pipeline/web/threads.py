"""Threads: a searchable list, and one thread with its paragraphs and comment tree."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from pipeline.web.common import opt_page, pages, render

router = APIRouter()


@router.get("/threads", response_class=HTMLResponse)
def threads_page(request: Request, q: str | None = None, page: str | None = None) -> HTMLResponse:
    _, index = request.app.state.dash.current()
    text = (q or "").strip() or None
    nav = pages(index.count_threads(text), opt_page(page))
    rows = index.threads_page(text, nav["offset"], nav["size"])
    return render(request, "threads.html", q=text or "", nav=nav, rows=rows, schema=index.schema)


@router.get("/thread", response_class=HTMLResponse)
def thread_page(request: Request, id: str = "") -> HTMLResponse:  # noqa: A002 - the query key
    _, index = request.app.state.dash.current()
    thread = index.thread(id) if id else None
    if thread is None:
        raise HTTPException(404, f"no thread {id!r} in the store" if id else "give a thread: /thread?id=THREAD_ID")
    items = index.thread_items(id)
    return render(request, "thread.html", thread=thread,
                  paragraphs=[i for i in items if i["kind"] == "paragraph"],
                  comments=[i for i in items if i["kind"] != "paragraph"])
