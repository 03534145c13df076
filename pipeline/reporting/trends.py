"""Label shares over time: how sentiment and per-target stance move from month to month.

An item is dated by its ``posted_at``; items without one (article paragraphs, undated comments) by
their thread's ``article_date``, else by the earliest comment time in the thread (the text dumps carry
no article date; ingest derives thread ids the same way); items with none of these count as ``undated``.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

PERIODS = {"month": 7, "year": 4}
UNDATED = "undated"


def item_date(row: dict[str, Any]) -> str | None:
    """YYYY-MM-DD the item is counted under (posted_at, else article_date, else first comment time)."""
    for key in ("posted_at", "article_date", "thread_first_posted_at"):
        value = row.get(key)
        if value:
            return str(value)[:10]
    return None


def label_shares(rows: Iterable[dict[str, Any]], by: str = "month", none_class: str = "none",
                 kinds: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per period: ``n``, ``sentiment:<class>`` shares and ``<target>:<class>`` stance shares
    (non-none classes), from store rows with a decoded prediction ``record``."""
    if by not in PERIODS:
        raise ValueError(f"by must be one of {', '.join(PERIODS)}")
    kinds = set(kinds) if kinds else None
    records = []
    sentiment_classes: list[str] = []
    stance_classes: dict[str, list[str]] = {}
    for row in rows:
        rec = row.get("record")
        if not rec or (kinds and row.get("kind") not in kinds):
            continue
        date = item_date(row)
        out = {"period": date[: PERIODS[by]] if date else UNDATED, "sentiment": rec["sentiment"]["label"]}
        for c in rec["sentiment"]["probs"]:
            if c not in sentiment_classes:
                sentiment_classes.append(c)
        for t, head in rec["stance"].items():  # records: docs/formats.md, "Prediction records"
            out[f"stance:{t}"] = head["label"]
            stance_classes.setdefault(t, [c for c in head["probs"] if c != none_class])
        records.append(out)
    if not records:
        return pd.DataFrame(columns=["period", "n"])
    frame = pd.DataFrame.from_records(records)
    groups = frame.groupby("period", sort=True)
    out = pd.DataFrame({"n": groups.size()})
    for c in sentiment_classes:
        out[f"sentiment:{c}"] = groups["sentiment"].apply(lambda s, c=c: float((s == c).mean()))
    for t, classes in stance_classes.items():
        for c in classes:
            out[f"{t}:{c}"] = groups[f"stance:{t}"].apply(lambda s, c=c: float((s == c).mean()))
    out = out.reset_index()
    dated = out[out["period"] != UNDATED]
    return pd.concat([dated, out[out["period"] == UNDATED]], ignore_index=True)


def plot_shares(shares: pd.DataFrame, out: str | Path, title: str) -> Path:
    """Two panels (sentiment shares; favor solid / against dashed per target) over the dated periods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = shares[shares["period"] != "undated"]
    x = list(range(len(data)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(9.0, 0.45 * len(data) + 5), 7.5), sharex=True)
    sent_cols = [c for c in data.columns if c.startswith("sentiment:")]
    colours = {"negative": "tab:red", "neutral": "tab:gray", "positive": "tab:green"}
    for col in sent_cols:
        name = col.split(":", 1)[1]
        top.plot(x, data[col], marker="o", label=name, color=colours.get(name))
    top.set_ylabel("share of items")
    top.set_ylim(0, 1)
    top.set_title("sentiment")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    stance_cols = [c for c in data.columns if ":" in c and not c.startswith("sentiment:")]
    targets = list(dict.fromkeys(c.split(":", 1)[0] for c in stance_cols))
    palette = plt.get_cmap("tab10")
    for k, t in enumerate(targets):
        for col in (c for c in stance_cols if c.startswith(f"{t}:")):
            cls = col.split(":", 1)[1]
            bottom.plot(x, data[col], marker="o" if cls == "against" else "s", color=palette(k % 10),
                        linestyle="--" if cls == "against" else "-", label=f"{t} {cls}")
    bottom.set_ylabel("share of items")
    bottom.set_ylim(0, 1)
    bottom.set_title("stance per target (favor solid, against dashed)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7)
    bottom.set_xticks(x)
    bottom.set_xticklabels([f"{p}\n(n={n})" for p, n in zip(data["period"], data["n"])], rotation=45,
                           ha="right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
