"""What the dashboard knows while it runs: the store's browse index, the model, and cached trend tables and
rankings (keyed by model version, the index they were computed from and the filters)."""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.store.backend import is_url, shown
from pipeline.store.browse import BrowseIndex, ItemFilter

CACHE_SIZE = 64
CHECK_EVERY = 1.0  # seconds between two checks of the store for changes
log = logging.getLogger("threadstance.web")
RANKED = 1000  # the label-next page keeps this many of the ranking


@dataclass(frozen=True)
class TrendQuery:
    """The filters of one trends view (every field is part of the cache key)."""

    by: str = "month"
    kinds: tuple[str, ...] = ()
    thread_id: str | None = None
    since: str | None = None
    until: str | None = None
    min_confidence: float | None = None


@dataclass
class TrendView:
    frame: pd.DataFrame
    notes: list[str]
    corrected: bool
    seconds: float
    rendered: dict[str, str] = field(default_factory=dict)  # page HTML by address, and the CSV


@dataclass
class ModelInfo:
    """The served model: its version, folder (None when only the store knows the version) and card summary."""

    version: str | None
    folder: Path | None
    card: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Any] | None = None
    table_note: str | None = None


def _card(folder: Path) -> dict[str, Any]:
    """Base model, training data and out-of-fold / gold scores from the model folder's recorded files."""
    from pipeline.modeling.folder import GOLD_METRICS_FILE, METRICS_FILE, ModelFolder

    mf = ModelFolder(folder)
    m = mf.read_json(METRICS_FILE, default={}) or {}
    gold = mf.read_json(GOLD_METRICS_FILE, default=None) if mf.has(GOLD_METRICS_FILE) else None
    counts = m.get("counts", {})
    oof = (gold or {}).get("domain_real_oof") or {}
    return {"run_name": m.get("run_name"), "base_model": m.get("base_model"),
            "trainable_layers": m.get("trainable_layers"), "train_seconds": m.get("train_seconds"),
            "train": counts.get("train"), "domain_real_train": counts.get("domain_real_train"),
            "oof_table": (mf.read_oof_table() or {}).get("n"),
            "oof": oof.get("scores") if oof.get("available") else None, "oof_recipe": oof.get("recipe"),
            "gold": (gold or {}).get("model"), "gold_n": (gold or {}).get("n_items")}


def resolve_model(store_path: str | Path, model: str | Path | None) -> ModelInfo:
    """``model``: a model folder, a model_version, or None (models/default when it is a model folder, else
    the store's latest model version)."""
    from pipeline.config.settings import DEFAULT_MODELS
    from pipeline.inference.classify import resolve_model_version
    from pipeline.modeling.folder import ModelFolder
    from pipeline.reporting.trends import find_model_folder, load_error_tables
    from pipeline.store.db import Store

    if model is None and ModelFolder(DEFAULT_MODELS / "default").is_model():
        model = DEFAULT_MODELS / "default"
    with Store.open_readonly(store_path) as store:
        try:
            version: str | None = resolve_model_version(store, model)
        except UserError:
            if model is not None:
                raise
            version = None  # a store without predictions: the pages say so
    folder = Path(model) if model is not None and ModelFolder(model).is_model() else None
    if folder is None and version:
        folder = find_model_folder(version, DEFAULT_MODELS)
    info = ModelInfo(version, folder)
    if folder is not None:
        info.card = _card(folder)
        info.tables, info.table_note = load_error_tables(folder)
    elif version:
        info.table_note = (f"shares are not corrected for classifier error: no model folder of version {version} "
                           "(start serve with --model FOLDER)")
    return info


class Dashboard:
    """The browse index of one store, the served model and the caches of the pages."""

    def __init__(self, store_path: str | Path, model: str | Path | None = None, *, n_boot: int = 1000,
                 min_items: int = 30, gold: str | Path | None = None) -> None:
        from pipeline.reporting.trends import MIN_THREADS, item_date

        self.store_path: str | Path = store_path if is_url(store_path) else Path(store_path)
        self._date_of = item_date
        self.index = BrowseIndex(self.store_path, item_date)
        self.model = resolve_model(self.store_path, model)
        self.n_boot, self.min_items = n_boot, min_items
        self.min_threads = MIN_THREADS
        self.gold = Path(gold) if gold is not None else None
        self._trends: OrderedDict[tuple[Any, ...], TrendView] = OrderedDict()
        self._ranking: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._compute = threading.Lock()
        self._rebuilding = threading.Lock()
        self._checked = time.monotonic()
        self._last_error: str | None = None
        self.index.refresh(self.model.version)

    @property
    def store_label(self) -> str:
        """The store as the pages name it: a file's name, or a URL with its password masked."""
        return self.store_path.name if isinstance(self.store_path, Path) else shown(self.store_path)

    @property
    def version(self) -> str | None:
        return self.model.version

    def has_predictions(self, index: BrowseIndex | None = None) -> bool:
        """Whether the store (as ``index``, default the current one, holds it) has predictions of the served
        model (a default model folder can be served over a store that it has not classified yet)."""
        index = index or self.current()[1]
        return bool(self.version and index.schema.sentiment)

    def no_predictions(self) -> str:
        """What to tell a user when :meth:`has_predictions` is False."""
        if not self.version:
            return "no predictions in the store yet (run `threadstance reclassify` or `predict --db`)"
        return (f"no predictions of model {self.version} in the store yet (run `threadstance reclassify` or "
                "`predict --db` with it, or serve another model with --model)")

    def current(self) -> tuple[tuple[Any, ...], BrowseIndex]:
        """The index the pages read now and its cache key prefix. A request takes it once and passes it on.

        At most once a second, whether the store changed since that index was built is checked; if it did, a
        new index is built in the background and takes its place when it is ready. Pages keep reading the
        current one meanwhile, so a rebuild (seconds on a large store) never holds up a request. A replaced
        index is closed when the last request reading it lets go of it."""
        index = self.index
        now = time.monotonic()
        if now - self._checked >= CHECK_EVERY and not self._rebuilding.locked():
            self._checked = now
            if self._changed(index) and self._rebuilding.acquire(blocking=False):
                threading.Thread(target=self._rebuild, name="rebuild-index", daemon=True).start()
        return (self.model.version, index.generation), index

    def _changed(self, index: BrowseIndex) -> bool:
        try:
            return index.data_version() != index.built_version
        except UserError as exc:  # the store cannot be read now: keep serving what was read before
            self._log_once(f"cannot check the store for changes: {exc}")
            return False

    def _log_once(self, message: str) -> None:
        if message != self._last_error:
            log.warning("%s", message)
            self._last_error = message

    def _rebuild(self) -> None:
        """Build a new index of the store as it is now and swap it in (runs with ``_rebuilding`` held)."""
        try:
            if self._changed(self.index):  # another rebuild may have just finished
                new = BrowseIndex(self.store_path, self._date_of)
                try:
                    new.refresh(self.model.version)
                except BaseException:
                    new.close()
                    raise
                new.generation = self.index.generation + 1
                self.index = new
                self._last_error = None
        except Exception as exc:  # noqa: BLE001 - the next check tries again; the current index keeps serving
            self._log_once(f"rebuilding the dashboard index failed: {exc}")
        finally:
            self._rebuilding.release()

    def store(self) -> Any:
        """A read-only Store (for runs, counts and model versions); close it after use."""
        from pipeline.store.db import Store

        return Store.open_readonly(self.store_path)

    # ---- trends -------------------------------------------------------------------------------------
    def trends(self, q: TrendQuery, current: tuple[tuple[Any, ...], BrowseIndex] | None = None) -> TrendView:
        """Label shares per period for ``q`` (cached), from ``current`` (default :meth:`current`)."""
        prefix, index = current or self.current()
        key = (*prefix, q)
        with self._compute:
            if key in self._trends:
                self._trends.move_to_end(key)
                return self._trends[key]
            start = time.perf_counter()
            view = self._compute_trends(q, index)
            view.seconds = time.perf_counter() - start
            self._trends[key] = view
            while len(self._trends) > CACHE_SIZE:
                self._trends.popitem(last=False)
            return view

    def _compute_trends(self, q: TrendQuery, index: BrowseIndex) -> TrendView:
        from pipeline.reporting.trends import COLUMNS, select_items, thread_floor, trend_frame

        notes = [self.model.table_note] if self.model.table_note else []
        f = ItemFilter(kinds=q.kinds, thread_id=q.thread_id, since=q.since, until=q.until)
        rows, probs = index.probabilities(f)
        cols = index.schema.prob_columns()
        for row, p in zip(rows, probs):
            heads: dict[str, dict[str, float]] = {}
            for (_, task, cls), value in zip(cols, p):
                heads.setdefault(task, {})[cls] = value
            row["posted_at"] = row.pop("date")
            row["record"] = {"sentiment": {"probs": heads.pop("sentiment", {})},
                             "stance": {t: {"probs": h} for t, h in heads.items()}}
        items, undated = select_items(rows, q.by, kinds=q.kinds, threads=[q.thread_id] if q.thread_id else None,
                                      since=q.since, until=q.until)
        if undated:
            notes.append(f"{undated} items have no date (no posted_at, article date or comment time) and are left out")
        if items.empty:
            return TrendView(pd.DataFrame(columns=COLUMNS), notes, False, 0.0)
        frame, more = trend_frame(items, self.model.tables, min_confidence=q.min_confidence,
                                  min_items=self.min_items, min_threads=thread_floor(self.min_threads, [q.thread_id] if q.thread_id else None),
                                  n_boot=self.n_boot)
        return TrendView(frame, notes + more, self.model.tables is not None, 0.0)

    def warm(self) -> None:
        """Compute the unfiltered trend tables and the label-next ranking (serve runs this at start)."""
        if self.has_predictions():
            for by in ("month", "quarter", "year"):
                self.trends(TrendQuery(by=by))
            self.ranking()

    # ---- label next ---------------------------------------------------------------------------------
    def labelled(self) -> set[str]:
        from pipeline.inference.suggest import labelled_item_ids

        return labelled_item_ids([self.gold]) if self.gold is not None and self.gold.is_file() else set()

    def ranking(self, current: tuple[tuple[Any, ...], BrowseIndex] | None = None) -> list[dict[str, Any]]:
        """Every unlabelled classified item, most informative first (suggest's uncertainty score over the
        stored calibrated probabilities; no model is run)."""
        from pipeline.inference.suggest import order_by_score, uncertainty_scores

        key, index = current or self.current()
        with self._compute:
            if key in self._ranking:
                return self._ranking[key]
            rows, probs = index.probabilities(ItemFilter())
            labelled = self.labelled()
            keep = [i for i, r in enumerate(rows) if r["item_id"] not in labelled]
            rows = [rows[i] for i in keep]
            schema = index.schema
            p = np.asarray([probs[i] for i in keep], dtype=float).reshape(len(keep), -1)
            s = len(schema.sentiment)
            sent = p[:, :s]
            stance = p[:, s:].reshape(len(keep), len(schema.targets), len(schema.stance))
            scores, worst, margins = uncertainty_scores(sent, stance)
            heads = ["sentiment", *(f"stance:{t}" for t in schema.targets)]
            order = order_by_score(range(len(rows)), scores, [r["item_id"] for r in rows])
            ranked = [{**rows[i], "rank": n, "score": float(scores[i]), "head": heads[int(worst[i])],
                       "margin": float(margins[i, worst[i]])} for n, i in enumerate(order[:RANKED], start=1)]
            self._ranking = {key: ranked}
            return ranked
