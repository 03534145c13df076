"""Label shares over time, corrected for classifier error, with 95 % intervals.

One record per (period, target, label): ``target`` is ``sentiment`` or a stance target. ``share_raw`` is
classify-and-count (the share of items given the label); ``share`` is corrected with the misclassification
rates of the model folder's out-of-fold table (:mod:`pipeline.evaluation.prevalence`); its interval
redraws threads (then items within them) and the out-of-fold table in every bootstrap replicate.
Reader comments and replies are corrected with the rates measured on the table's comments, article
paragraphs with those of its other passages, and the two combined by their item counts (when the table
records kinds). Without a table the corrected columns stay empty and a note says why. A period is flagged
``too_few`` with fewer than ``min_items`` items or ``min_threads`` threads: the interval resamples threads,
so from one or two threads it cannot show how much threads differ.

An item is dated by its ``posted_at``; items without one (article paragraphs, undated comments) by
their thread's ``article_date``, else by the earliest comment time in the thread (the text dumps carry
no article date; ingest derives thread ids the same way); items with none of these are left out (a note
counts them).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.evaluation.prevalence import (
    METHODS,
    ErrorTable,
    Rates,
    abstains,
    cluster_weights,
    estimate_shares,
    estimate_stratified,
    rates_by_stratum,
    stratum_of,
    table_rates,
)
from pipeline.inference.abstain import ABSTAIN, check_min_confidence

PERIODS = {"month": "M", "quarter": "Q", "year": "Y"}
KINDS = ("comment", "reply", "paragraph")
MIN_THREADS = 3  # fewer threads in a period: too_few (its interval cannot show how threads differ)
COLUMNS = ["period", "period_start", "period_end", "target", "label", "n", "n_threads", "share_raw", "raw_ci_low",
           "raw_ci_high", "share", "ci_low", "ci_high", "method", "too_few"]


@dataclass
class Trends:
    """The records (a DataFrame with :data:`COLUMNS`), the model version and notes for the reader."""

    frame: pd.DataFrame
    model_version: str
    notes: list[str] = field(default_factory=list)
    corrected: bool = False


def item_date(row: dict[str, Any]) -> str | None:
    """YYYY-MM-DD the item is counted under (posted_at, else article_date, else first comment time)."""
    for key in ("posted_at", "article_date", "thread_first_posted_at"):
        value = row.get(key)
        if value:
            return str(value)[:10]
    return None


def _heads(rec: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Class probabilities per task (``sentiment`` and each target) of a stored prediction record."""
    if isinstance(rec.get("sentiment"), dict):  # docs/formats.md, "Prediction records"
        out = {"sentiment": rec["sentiment"]["probs"]}
        out.update({t: head["probs"] for t, head in rec["stance"].items()})
        return out
    out = {"sentiment": rec["sentiment_probs"]}  # records written before that schema
    out.update(rec["stance_probs"])
    return out


def _check_date(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    except ValueError as exc:
        raise UserError(f"{option} {value!r}: not a date (use YYYY-MM-DD)") from exc


def select_items(rows: Iterable[dict[str, Any]], by: str, *, kinds: Sequence[str] | None = None,
                 threads: Sequence[str] | None = None, since: str | None = None,
                 until: str | None = None) -> tuple[pd.DataFrame, int]:
    """Predicted items that pass the filters, with their ``period`` (a pandas Period) and task
    probabilities (``heads``); and the number of undated items left out."""
    if by not in PERIODS:
        raise UserError(f"--by {by!r}: choose {', '.join(PERIODS)}")
    bad = sorted(set(kinds or ()) - set(KINDS))
    if bad:
        raise UserError(f"--kind {bad[0]!r}: choose {', '.join(KINDS)}")
    since, until = _check_date(since, "--since"), _check_date(until, "--until")
    if since and until and since > until:
        raise UserError(f"--since {since} is after --until {until}: no day can match")
    kinds_set, threads_set = set(kinds or ()), set(threads or ())
    out, undated = [], 0
    for row in rows:
        rec = row.get("record")
        if not rec or (kinds_set and row.get("kind") not in kinds_set) or (threads_set and row.get("thread_id")
                                                                           not in threads_set):
            continue
        date = item_date(row)
        if date is None:
            undated += 1
            continue
        if (since and date < since) or (until and date > until):
            continue
        out.append({"item_id": row.get("item_id"), "thread_id": row.get("thread_id"), "kind": row.get("kind"),
                    "date": date, "period": pd.Period(date, PERIODS[by]), "heads": _heads(rec)})
    return pd.DataFrame.from_records(out, columns=["item_id", "thread_id", "kind", "date", "period", "heads"]), undated


def _task_rates(task: str, table: ErrorTable, table_draws: np.ndarray, needed: set[str], min_confidence: float | None,
                method: str, n_boot: int, rng: np.random.Generator, notes: list[str]
                ) -> Rates | dict[str, Rates] | None:
    """Misclassification rates of one task from the table items the model is sure enough of: one set per
    stratum when the table records kinds (classes rare in a stratum keep the pooled rates), else one pooled
    set; None (and a note) when there are none."""
    keep = ~abstains(table.probs, min_confidence)
    if not keep.any():
        notes.append(f"{task}: no out-of-fold passage reaches --min-confidence {min_confidence}; its shares are "
                     "not corrected")
        return None
    kept = table.subset(keep)
    pooled = table_rates(kept, method, n_boot, rng, table_draws[:, keep])
    if _singular(pooled):
        notes.append(f"{task}: its misclassification matrix is singular (the model never tells some classes "
                     "apart on the out-of-fold passages it keeps); its shares are not corrected")
        return None
    if table.strata is None:
        return pooled
    for name in sorted(needed - set(kept.strata.tolist())):
        what = _STRATUM_WORDS[name]
        why = f" reaches --min-confidence {min_confidence}" if min_confidence else " is in it"
        notes.append(f"{task}: no out-of-fold {what} passage{why}; those items are corrected with the rates "
                     "of all passages")
    by_stratum = rates_by_stratum(kept, method, n_boot, rng, table_draws[:, keep], names=sorted(needed))
    for name, rates in by_stratum.items():
        if _singular(rates):
            notes.append(f"{task}: the misclassification matrix of {_STRATUM_WORDS[name]} passages is singular; "
                         "those items are corrected with the rates of all passages")
            by_stratum[name] = pooled
    return by_stratum


_STRATUM_WORDS = {"comment": "reader-comment", "other": "article, opinion or report"}


def _singular(rates: Rates) -> bool:
    """Whether the point rates cannot be inverted (the adjustment would silently return the raw share)."""
    return bool(np.linalg.matrix_rank(rates.point) < len(rates.point))


def thread_floor(min_threads: int, threads: Sequence[str] | None) -> int:
    """The ``min_threads`` that applies: with a thread filter those threads are the population, not a sample."""
    return min(min_threads, len(set(threads))) if threads else min_threads


def trend_frame(items: pd.DataFrame, tables: dict[str, ErrorTable] | None, *, min_confidence: float | None = None,
                min_items: int = 30, min_threads: int = MIN_THREADS, method: str = "acc", n_boot: int = 1000,
                seed: int = 13) -> tuple[pd.DataFrame, list[str]]:
    """One record per (period, target, label) from :func:`select_items` output (see :data:`COLUMNS`)."""
    if method not in METHODS:
        raise UserError(f"--method {method!r}: choose {', '.join(METHODS)}")
    min_confidence = check_min_confidence(min_confidence)
    notes: list[str] = []
    if items.empty:
        return pd.DataFrame(columns=COLUMNS), notes
    rng = np.random.default_rng(seed)
    first = items["heads"].iloc[0]
    table_draws: np.ndarray | None = None
    if tables:
        groups = next(iter(tables.values())).groups
        table_draws = cluster_weights(groups, n_boot, rng)  # one draw of the table per replicate, every task
    rows: list[dict[str, Any]] = []
    periods = sorted(items["period"].unique())
    strata = items["kind"].map(stratum_of).to_numpy()
    if tables and next(iter(tables.values())).strata is None:
        notes.append("the out-of-fold table records no passage kinds and the shared domain_real file that has "
                     "them is not found: comments and paragraphs are corrected with the same rates, pooled over kinds")
    for task in first:
        classes = list(first[task])
        table = (tables or {}).get(task)
        if tables and (table is None or sorted(table.classes) != sorted(classes)):
            notes.append(f"{task}: the out-of-fold table has no matching classes; its shares are not corrected")
            table = None
        if table is not None:
            classes = list(table.classes)
        rates = None
        if table is not None and table_draws is not None:
            rates = _task_rates(task, table, table_draws, set(strata.tolist()), min_confidence, method, n_boot, rng,
                                notes)
        for period in periods:
            mask = (items["period"] == period).to_numpy()
            in_period = items[mask]
            probs = np.array([[h[task][c] for c in classes] for h in in_period["heads"]], dtype=float)
            threads = in_period["thread_id"].to_numpy()
            unsure = abstains(probs, min_confidence)
            if isinstance(rates, dict):
                est = estimate_stratified(probs[~unsure], threads[~unsure], strata[mask][~unsure], rates, n_boot, rng)
            else:
                est = estimate_shares(probs[~unsure], threads[~unsure], rates, n_boot, rng)
            base = {"period": str(period), "period_start": period.start_time.strftime("%Y-%m-%d"),
                    "period_end": period.end_time.strftime("%Y-%m-%d"), "target": task,
                    "method": method if rates is not None else "cc"}
            for j, label in enumerate(classes):
                rows.append({**base, "label": label, "n": est.n, "n_threads": est.n_clusters,
                             "share_raw": est.share_raw[j], "raw_ci_low": est.raw_ci[0, j],
                             "raw_ci_high": est.raw_ci[1, j],
                             "share": est.share[j] if est.share is not None else np.nan,
                             "ci_low": est.ci[0, j] if est.ci is not None else np.nan,
                             "ci_high": est.ci[1, j] if est.ci is not None else np.nan,
                             "too_few": est.n < min_items or est.n_clusters < min_threads})
            if min_confidence:
                flag = unsure.astype(float)[:, None]
                ab = estimate_shares(np.hstack([flag, 1 - flag]), threads, None, n_boot, rng)
                rows.append({**base, "method": "cc", "label": ABSTAIN, "n": len(probs),
                             "n_threads": ab.n_clusters, "share_raw": ab.share_raw[0], "raw_ci_low": ab.raw_ci[0, 0],
                             "raw_ci_high": ab.raw_ci[1, 0], "share": ab.share_raw[0], "ci_low": ab.raw_ci[0, 0],
                             "ci_high": ab.raw_ci[1, 0],
                             "too_few": len(probs) < min_items or ab.n_clusters < min_threads})
    return pd.DataFrame.from_records(rows, columns=COLUMNS), notes


def find_model_folder(version: str, models_dir: str | Path) -> Path | None:
    """The model folder under ``models_dir`` whose recorded model_version is ``version``, if any."""
    from pipeline.modeling.folder import ModelFolder

    root = Path(models_dir)
    if not root.is_dir():
        return None
    for child in sorted(root.iterdir()):
        folder = ModelFolder(child)
        if folder.is_model():
            try:
                if folder.recorded_version() == version:
                    return child
            except UserError:
                continue
    return None


def load_error_tables(model_dir: str | Path) -> tuple[dict[str, ErrorTable] | None, str | None]:
    """Error tables of a model folder, or None and the one-line reason there are none."""
    from pipeline.evaluation.prevalence import error_tables
    from pipeline.modeling.folder import OOF_TABLE_FILE, ModelFolder

    folder = ModelFolder(model_dir)
    oof = folder.read_oof_table()
    if oof is None:
        return None, (f"shares are not corrected for classifier error: {model_dir} has no {OOF_TABLE_FILE} "
                      "(trained without calibration.oof_predictions)")
    if not oof.get("kinds") and oof.get("dataset") == "domain_real":
        oof = {**oof, "kinds": _domain_real_kinds(oof["ids"])}
    return error_tables(oof, folder.read_meta()), None


def _domain_real_kinds(ids: list[str]) -> list[str] | None:
    """Each passage's kind from the shared domain_real file, for tables written before kinds were stored;
    None when the file is not there or lacks an id (the rates are then pooled over kinds, with a note)."""
    from pipeline.data.public_data import load_domain_real

    try:
        kind = {r["id"]: r.get("kind") for r in load_domain_real()}
    except UserError:
        return None
    return [kind[i] for i in ids] if all(i in kind for i in ids) else None


def trends(db: str | Path, model: str | Path | None = None, by: str = "year", *, kinds: Sequence[str] | None = None,
           threads: Sequence[str] | None = None, since: str | None = None, until: str | None = None,
           min_confidence: float | None = None, min_items: int = 30, min_threads: int = MIN_THREADS,
           method: str = "acc", n_boot: int = 1000, seed: int = 13, models_dir: str | Path | None = None) -> Trends:
    """Label shares per period of one model's stored predictions (``model``: a model folder, a
    model_version, or None for the model of the latest reclassify run, else of the newest prediction).
    The out-of-fold table comes from that folder (or, for a version, from the folder under
    ``models_dir`` that has it)."""
    from pipeline.config.settings import DEFAULT_MODELS
    from pipeline.inference.classify import resolve_model_version
    from pipeline.modeling.folder import ModelFolder
    from pipeline.store.backend import store_exists
    from pipeline.store.db import Store

    if not store_exists(db):
        raise UserError("no store here yet (run `threadstance reclassify` or `threadstance predict --db`)", db)
    folder: Path | None = Path(model) if model is not None and ModelFolder(model).is_model() else None
    store = Store.open_readonly(db)
    try:
        version = resolve_model_version(store, model)  # a folder's version, a version as given, or the latest
        rows = store.items_with_predictions(version, predicted_only=True)
    finally:
        store.close()
    if not rows:
        raise UserError(f"no predictions from model version {version} in the store", db)
    notes: list[str] = []
    folder = folder or find_model_folder(version, models_dir or DEFAULT_MODELS)
    if folder is None:
        tables, reason = None, (f"shares are not corrected for classifier error: no model folder of version {version} "
                                f"under {models_dir or DEFAULT_MODELS} (give --model FOLDER)")
    else:
        tables, reason = load_error_tables(folder)
    if reason:
        notes.append(reason)
    items, undated = select_items(rows, by, kinds=kinds, threads=threads, since=since, until=until)
    min_threads = thread_floor(min_threads, threads)
    if undated:
        notes.append(f"{undated} items have no date (no posted_at, article date or comment time) and are left out")
    frame, more = trend_frame(items, tables, min_confidence=min_confidence, min_items=min_items,
                              min_threads=min_threads, method=method, n_boot=n_boot, seed=seed)
    return Trends(frame, version, notes + more, corrected=tables is not None)


_COLOURS = {"negative": "tab:red", "neutral": "tab:gray", "positive": "tab:green", "favor": "tab:green",
            "against": "tab:red"}


def _period_freq(frame: pd.DataFrame) -> str:
    """The pandas frequency of the frame's periods (from their labels: 2016, 2016Q2, 2016-06)."""
    first = str(frame["period"].iloc[0]) if len(frame) else "2000"
    return PERIODS["quarter"] if "Q" in first else PERIODS["month"] if "-" in first else PERIODS["year"]


def trends_figure(frame: pd.DataFrame, title: str, none_class: str = "none") -> Any:
    """One panel per target on a shared date axis: the corrected share (raw when there is none) of each
    label at the middle of its period, its 95 % interval as a band (and a bar), the raw share dotted beside
    it. Periods flagged ``too_few`` get no point, only a grey span; a missing period breaks the line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    targets = list(dict.fromkeys(frame["target"]))
    freq = _period_freq(frame)
    fig, axes = plt.subplots(max(1, len(targets)), 1, figsize=(10, 2.3 * max(1, len(targets)) + 0.8), sharex=True,
                             squeeze=False)
    for ax, target in zip(axes[:, 0], targets):
        part = frame[frame["target"] == target]
        for _, row in part[part["too_few"]].drop_duplicates("period").iterrows():
            ax.axvspan(pd.Timestamp(row["period_start"]), pd.Timestamp(row["period_end"]), color="0.92", lw=0)
        labels = [c for c in dict.fromkeys(part["label"]) if c != ABSTAIN and (c != none_class or target == "sentiment")]
        corrected = part["share"].notna().any()
        cols = ("share", "ci_low", "ci_high") if corrected else ("share_raw", "raw_ci_low", "raw_ci_high")
        for k, label in enumerate(labels):
            rows = part[part["label"] == label].set_index("period")
            rows.loc[rows["too_few"], [*cols, "share_raw"]] = np.nan  # no point for a period with too few items
            # every period from the first to the last, so a missing one breaks the line instead of bridging it
            periods = pd.period_range(min(rows["period_start"]), max(rows["period_end"]), freq=freq)
            rows = rows.reindex([str(p) for p in periods])
            x = np.array([p.start_time + (p.end_time - p.start_time) / 2 for p in periods], dtype="datetime64[s]")
            y, lo, hi = (rows[c].to_numpy(float) for c in cols)
            colour = _COLOURS.get(label, plt.get_cmap("tab10")(k % 10))
            ax.fill_between(x, lo, hi, color=colour, alpha=0.18, lw=0)
            ax.vlines(x, lo, hi, color=colour, alpha=0.5, lw=1)  # an isolated period still shows its interval
            ax.plot(x, y, marker="o", ms=4, color=colour, label=label)
            if corrected:
                ax.plot(x, rows["share_raw"].to_numpy(float), ls=":", lw=1, marker="_", ms=9, color=colour)
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.tick_params(labelsize=8)
        ax.set_title(target, loc="left", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    bottom = axes[-1, 0]
    locator = mdates.AutoDateLocator()
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, 0.005, "points: corrected share; bands and bars: 95 % intervals; dotted, dashes: raw share (classify and count); "
             "grey: too few items",
             fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


def plot_trends(frame: pd.DataFrame, out: str | Path, title: str, none_class: str = "none",
                file_format: str | None = None) -> Path:
    """Write :func:`trends_figure` as a PNG (``file_format``: matplotlib's, when ``out`` has no such suffix)."""
    import matplotlib.pyplot as plt

    fig = trends_figure(frame, title, none_class)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, format=file_format)
    plt.close(fig)
    return out
