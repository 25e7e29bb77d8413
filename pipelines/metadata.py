"""Small helpers that turn results into Dagster metadata the UI renders well."""

from __future__ import annotations

import dagster as dg
import polars as pl


def markdown_table(frame: pl.DataFrame, limit: int = 10, max_chars: int = 60) -> dg.MetadataValue:
    """A preview of the first `limit` rows as a markdown table (cells cut to `max_chars`)."""
    head = frame.head(limit)

    def cell(value) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in head.iter_rows()]
    return dg.MetadataValue.md("\n".join(lines))


def counts_table(frame: pl.DataFrame, column: str, limit: int = 20) -> dg.MetadataValue:
    counts = frame.group_by(column).len().sort("len", descending=True).head(limit)
    return markdown_table(counts.rename({"len": "count"}), limit=limit)
