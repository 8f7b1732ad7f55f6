"""How results show themselves in a notebook: small HTML tables and PNG plots inline (as base64 data
URIs, so that a saved notebook keeps them), for the result objects of actiscope.api. Plain HTML that
Jupyter, VS Code and GitHub render alike; no pandas (not a dependency)."""

from __future__ import annotations

import base64
import csv
import html
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

ROWS_SHOWN = 100  # rows of a long table (a folder's predictions) shown; the object holds them all


def escape(value: object) -> str:
    return html.escape(str(value))


def number(value: object) -> str:
    """A metric as a person reads it: 4 decimals for a fraction, 'undefined' for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "undefined"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def headline(accuracy: object, f1: object) -> str:
    """A run's headline: its test accuracy and macro-F1, or that it had no test images to score."""
    if accuracy is None or (isinstance(accuracy, float) and math.isnan(accuracy)):
        return "no test score (no test split)"
    return f"test accuracy {number(accuracy)}, macro-F1 {number(f1)}"


def plural(kind: str) -> str:
    """What a model of this kind predicts, for messages: images or clips."""
    return "clips" if kind == "video" else "images"


def section(title: str, *parts: str) -> str:
    """A titled block (`title` is HTML already) of the parts that are not empty."""
    body = "".join(part for part in parts if part)
    return f'<div class="actiscope"><p><b>{title}</b></p>{body}</div>'


def key_values(items: Iterable[tuple[str, object]]) -> str:
    """A two-column table: name, value."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(number(v))}</td></tr>" for k, v in items
    )
    return f"<table>{rows}</table>" if rows else ""


def table(rows: Iterable[Mapping[str, object]], *, limit: int | None = None) -> str:
    """A table of rows (dicts); its columns are the keys in the order they first appear, `error` last.
    Beyond `limit` rows, a line says how many more there are."""
    rows = list(rows)
    if not rows:
        return ""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    columns.sort(key=lambda c: c == "error")  # stable: only moves the error column to the end
    shown = rows if limit is None else rows[:limit]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>" for row in shown
    )
    more = f"<p>... and {len(rows) - len(shown)} more rows</p>" if len(rows) > len(shown) else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cell(value: object) -> str:
    return "" if value is None or value == "" else number(value)


def png(path: Path | None, alt: str) -> str:
    """The PNG at `path` inline, or nothing when there is none."""
    if path is None or not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}" style="max-width:100%">'


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A CSV of numbers (a run's history.csv) as rows, each value a number (None where empty); [] when
    the file is not there."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _value(text: str) -> int | float | str | None:
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
