"""Load a merchant or scraped product catalog into one normalized polars table.

Input is CSV or Parquet with a configurable column mapping; output is a table of products plus a
*catalog issues* table that names every row that was dropped or degraded and why. Nothing in a bad
row stops the good rows: a broken image degrades that product to text-only, a broken CSV record is
skipped and reported with its line number.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import re
import stat as py_stat
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit
from pathlib import Path

import polars as pl

from scene_assets.indexes.store import sha256_of_file
from scene_assets.images import FetchPolicy, ImageResolution, resolve_image

# Fields of the normalized table, in order. `content_hash` covers every field that changes an
# embedding (text fields and the image bytes), so downstream steps re-encode exactly what changed.
PRODUCT_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.String(),
    "sku": pl.String(),
    "title": pl.String(),
    "product_type": pl.String(),
    "description": pl.String(),
    "color_text": pl.String(),
    "size_text": pl.String(),
    "image_ref": pl.String(),
    "image_path": pl.String(),
    "image_status": pl.String(),
    "image_sha256": pl.String(),
    "variant_group": pl.String(),
    "source_row": pl.Int64(),
    "content_hash": pl.String(),
}

ISSUE_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.String(),
    "row_number": pl.Int64(),
    "line": pl.Int64(),
    "product_id": pl.String(),
    "severity": pl.String(),
    "field": pl.String(),
    "reason": pl.String(),
}

# Descriptions longer than this are cut: they only dilute a 256-token text encoder and bloat the table.
MAX_DESCRIPTION_CHARS = 2000
# A quoted CSV field spanning more physical lines than this is treated as an unclosed quote.
MAX_LINES_PER_RECORD = 20

_BOILERPLATE = re.compile(r"\s*view more product information\s*", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class CatalogError(ValueError):
    """The catalog as a whole cannot be read (missing file, missing mapped column, empty file)."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column feeds each normalized field. `None` means the catalog has no such column."""

    product_id: str
    description: str | None = None
    title: str | None = None
    sku: str | None = None
    product_type: str | None = None
    color: str | None = None
    size: str | None = None
    image: str | None = None

    def mapped_columns(self) -> dict[str, str]:
        return {name: column for name, column in asdict(self).items() if column}


MAPPING_PRESETS: dict[str, ColumnMapping] = {
    # The labeled-dataset format (../shared/ikea and the embedded sample).
    "labeled": ColumnMapping(
        product_id="product_id",
        title="name",
        product_type="type",
        color="color",
        size="size",
        description="description",
        image="image",
    ),
    # A merchant export: id, sku_id, description, primary_image (http URLs).
    "merchant": ColumnMapping(
        product_id="id", sku="sku_id", description="description", image="primary_image"
    ),
}


@dataclass
class CatalogResult:
    products: pl.DataFrame
    issues: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class _IssueLog:
    source: str
    rows: list[dict] = field(default_factory=list)

    def add(self, row_number, line, product_id, severity, field_name, reason) -> None:
        self.rows.append(
            {
                "source": self.source,
                "row_number": row_number,
                "line": line,
                "product_id": product_id,
                "severity": severity,
                "field": field_name,
                "reason": reason,
            }
        )

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=ISSUE_SCHEMA)


@dataclass(frozen=True)
class _RawRecord:
    row_number: int  # 1-based data row (header excluded)
    line: int | None  # 1-based physical line where the record starts (CSV only)
    values: dict[str, str | None]
    # Columns whose bytes were not valid UTF-8 (reported once the row's product id is known).
    badly_encoded: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _decode_field(value: str) -> tuple[str, bool]:
    """Undo `surrogateescape` for a field that held non-UTF-8 bytes; report whether it did."""
    try:
        value.encode("utf-8")
        return value, False
    except UnicodeEncodeError:
        raw = value.encode("utf-8", errors="surrogateescape")
        # cp1252 is what spreadsheet exports of Western catalogs almost always are when not UTF-8.
        return raw.decode("cp1252", errors="replace"), True


def _csv_records(text: str) -> Iterator[tuple[int, str | None, int]]:
    """Yield (start_line, record_text, n_lines); record_text None marks an unclosed quote.

    A record is complete when its double quotes balance (CSV escapes a quote as two quotes, so
    parity is preserved). A record that stays open past MAX_LINES_PER_RECORD lines or to the end of
    the file is a broken quote: only its first line is given up, parsing resumes on the next line.
    """
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        quotes = lines[i].count('"')
        j = i
        while quotes % 2 and j + 1 < len(lines) and j - i < MAX_LINES_PER_RECORD:
            j += 1
            quotes += lines[j].count('"')
        if quotes % 2:
            yield i + 1, None, 1
            i += 1
            continue
        yield i + 1, "".join(lines[i : j + 1]), j - i + 1
        i = j + 1


def _read_csv(path: Path, issues: _IssueLog) -> tuple[list[str], list[_RawRecord]]:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    text = raw.decode("utf-8", errors="surrogateescape")
    if not text.strip():
        raise CatalogError(f"{path}: the catalog file is empty")
    records_iter = _csv_records(text)
    header_line, header_text, _ = next(records_iter)
    if header_text is None:
        raise CatalogError(f"{path}: line {header_line}: the header row has an unclosed quote")
    header = [h.strip() for h in next(csv.reader(io.StringIO(header_text)))]
    records: list[_RawRecord] = []
    row_number = 0
    for line, record_text, _n_lines in records_iter:
        if record_text is not None and not record_text.strip():
            continue
        row_number += 1
        if record_text is None:
            issues.add(row_number, line, None, "dropped", None, f"line {line}: unclosed quote; row skipped")
            continue
        try:
            fields = next(csv.reader(io.StringIO(record_text), strict=True))
        except csv.Error as exc:
            issues.add(row_number, line, None, "dropped", None, f"line {line}: malformed CSV ({exc}); row skipped")
            continue
        if len(fields) != len(header):
            issues.add(
                row_number,
                line,
                None,
                "dropped",
                None,
                f"line {line}: expected {len(header)} fields, found {len(fields)}; row skipped",
            )
            continue
        values: dict[str, str | None] = {}
        badly_encoded = []
        for column, value in zip(header, fields):
            values[column], was_bad = _decode_field(value)
            if was_bad:
                badly_encoded.append(column)
        records.append(_RawRecord(row_number, line, values, tuple(badly_encoded)))
    return header, records


def _read_parquet(path: Path) -> tuple[list[str], list[_RawRecord]]:
    frame = pl.read_parquet(path)
    frame = frame.with_columns(pl.all().cast(pl.String))
    records = [
        _RawRecord(index + 1, None, row) for index, row in enumerate(frame.iter_rows(named=True))
    ]
    return frame.columns, records


# --------------------------------------------------------------------------------------------
# Normalizing
# --------------------------------------------------------------------------------------------


def clean_text(value: str | None) -> str | None:
    """NFKC-normalize, drop control characters and collapse whitespace; empty becomes None."""
    if value is None:
        return None
    value = unicodedata.normalize("NFKC", value)
    if not value.isprintable():  # fast path: printable text has no control/format characters
        value = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in value)
    value = _WHITESPACE.sub(" ", value).strip()
    return value or None


def clean_description(value: str | None) -> str | None:
    value = clean_text(value)
    if value is None:
        return None
    # Scraped pages repeat this link text, sometimes mid-description.
    return _WHITESPACE.sub(" ", _BOILERPLATE.sub(" ", value)).strip() or None


_SKU_SUFFIX = re.compile(r"^(?P<stem>.*\d)(?:[A-Za-z]{1,2}|-\d{1,3})$")


def sku_stem(sku: str) -> str:
    """`10483D` → `10483`, `00585-01` → `00585`: merchants mark variants of one item by a suffix."""
    match = _SKU_SUFFIX.match(sku.strip())
    return match.group("stem") if match else sku.strip()


def _variant_key(sku: str | None, title: str | None, product_type: str | None) -> str | None:
    if sku:
        return "sku:" + sku_stem(sku).casefold()
    if title and product_type:
        # IKEA-style catalogs: one series name + type in several colours or sizes.
        return "name:" + title.casefold() + "|" + product_type.casefold()
    return None


def content_hash(*parts: str | None) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update((part or "").encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]



# What the catalog sensor keeps as its cursor: enough to tell a changed catalog from a touched one.


def file_fingerprint(path: Path, previous: dict | None = None) -> dict | None:
    """``{"path", "size", "mtime_ns", "sha256"}`` of a file, None when it does not exist. The sha256 of
    ``previous`` is reused when path, size and mtime are unchanged, so an unchanged file is not re-read."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    current = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if previous and all(previous.get(key) == value for key, value in current.items()):
        return {**current, "sha256": previous["sha256"]}
    return {**current, "sha256": sha256_of_file(path)}


def catalog_changed(previous: dict | None, current: dict) -> bool:
    """A catalog never seen before, another file, or other bytes (a touched file with the same bytes is not a change)."""
    return previous is None or (previous["path"], previous["sha256"]) != (current["path"], current["sha256"])


@dataclass(frozen=True)
class CatalogOptions:
    fetch_policy: FetchPolicy = field(default_factory=FetchPolicy)
    # Folder that local image paths must stay inside (symlinks escaping it are refused).
    data_root: Path | None = None
    image_workers: int = 4
    # Parquet file remembering images already verified, keyed by (real path, size, mtime): a
    # re-run re-decodes only new or changed files. None disables the cache.
    image_check_cache: Path | None = None


def load_catalog(
    path: str | Path,
    mapping: ColumnMapping | str = "labeled",
    options: CatalogOptions | None = None,
) -> CatalogResult:
    """Read `path` (CSV or Parquet) into normalized products plus a catalog issues table.

    Raises CatalogError only when the file as a whole is unusable; row-level problems go to issues.
    """
    path = Path(path)
    options = options or CatalogOptions()
    if isinstance(mapping, str):
        try:
            mapping = MAPPING_PRESETS[mapping]
        except KeyError:
            raise CatalogError(
                f"unknown column mapping preset {mapping!r}; choose one of {sorted(MAPPING_PRESETS)}"
            ) from None
    if not path.is_file():
        raise CatalogError(f"{path}: catalog file not found (is the path or SCENE_MATCHER_CATALOG right?)")
    issues = _IssueLog(source=path.name)
    rows_unparseable = 0
    if path.suffix.lower() == ".parquet":
        header, records = _read_parquet(path)
    else:
        header, records = _read_csv(path, issues)
    rows_unparseable = sum(1 for issue in issues.rows if issue["severity"] == "dropped")

    missing = [f"{name} → {column!r}" for name, column in mapping.mapped_columns().items() if column not in header]
    if missing:
        raise CatalogError(
            f"{path}: mapped column(s) not found: {', '.join(missing)}; the file has columns {header}. "
            "Fix the column mapping (CatalogSource config) to match the file."
        )

    def get(record: _RawRecord, name: str) -> str | None:
        column = getattr(mapping, name)
        return record.values.get(column) if column else None

    rows: list[dict] = []
    seen: dict[str, dict] = {}
    for record in records:
        product_id = clean_text(get(record, "product_id"))
        if product_id is None:
            issues.add(record.row_number, record.line, None, "dropped", mapping.product_id, "empty product id; row skipped")
            continue
        for column in record.badly_encoded:
            issues.add(
                record.row_number, record.line, product_id, "degraded", column,
                f"line {record.line}: column {column!r} is not valid UTF-8; decoded as cp1252",
            )
        description = clean_description(get(record, "description"))
        if description and len(description) > MAX_DESCRIPTION_CHARS:
            issues.add(
                record.row_number, record.line, product_id, "degraded", mapping.description,
                f"description of {len(description)} characters cut to {MAX_DESCRIPTION_CHARS}",
            )
            description = description[:MAX_DESCRIPTION_CHARS].rsplit(" ", 1)[0]
        title = clean_text(get(record, "title"))
        product_type = clean_text(get(record, "product_type"))
        if title is None:
            # Merchant exports often have only a description line; it doubles as the title.
            title = description
        row = {
            "product_id": product_id,
            "sku": clean_text(get(record, "sku")),
            "title": title,
            "product_type": product_type,
            "description": description,
            "color_text": clean_text(get(record, "color")),
            "size_text": clean_text(get(record, "size")),
            "image_ref": clean_text(get(record, "image")),
            "source_row": record.row_number,
            "_line": record.line,
        }
        previous = seen.get(product_id)
        if previous is not None:
            same = all(previous[k] == row[k] for k in ("sku", "title", "product_type", "description", "color_text", "size_text", "image_ref"))
            reason = (
                f"duplicate product id (identical to row {previous['source_row']}); row skipped"
                if same
                else f"duplicate product id with different content; kept row {previous['source_row']}, this row skipped"
            )
            issues.add(record.row_number, record.line, product_id, "dropped", mapping.product_id, reason)
            continue
        has_text = any(row[k] for k in ("title", "product_type", "description"))
        if not has_text and not row["image_ref"]:
            issues.add(record.row_number, record.line, product_id, "dropped", None, "no text and no image; row skipped")
            continue
        if not description and mapping.description:
            issues.add(record.row_number, record.line, product_id, "degraded", mapping.description, "empty description")
        seen[product_id] = row
        rows.append(row)

    _resolve_images(rows, path.parent, options, issues, mapping.image)

    variant_members: dict[str, list[str]] = {}
    for row in rows:
        key = _variant_key(row["sku"], row["title"] if mapping.title else None, row["product_type"])
        if key:
            variant_members.setdefault(key, []).append(row["product_id"])
    for row in rows:
        key = _variant_key(row["sku"], row["title"] if mapping.title else None, row["product_type"])
        members = variant_members.get(key, []) if key else []
        # The group is named by its smallest member id so it is stable when members are added.
        row["variant_group"] = min(members) if len(members) > 1 else row["product_id"]
        row["content_hash"] = content_hash(
            row["title"], row["product_type"], row["description"], row["color_text"], row["size_text"], row["image_sha256"]
        )
        row.pop("_line")

    products = pl.DataFrame(rows, schema=PRODUCT_SCHEMA)
    issue_frame = issues.frame()
    stats = {
        "rows_read": len(records) + rows_unparseable,
        "products": products.height,
        "with_image": int((products["image_status"] == "ok").sum()),
        "dropped": int((issue_frame["severity"] == "dropped").sum()),
        "degraded": int((issue_frame["severity"] == "degraded").sum()),
        "variant_groups": int(products.filter(pl.col("variant_group") != pl.col("product_id")).select(pl.col("variant_group").n_unique()).item()),
    }
    return CatalogResult(products=products, issues=issue_frame, stats=stats)


_HOST_FAILURE = re.compile(r"DNS lookup|timed out|timeout|Connection refused|No route|unreachable", re.IGNORECASE)

_CHECK_CACHE_SCHEMA = {
    "real_path": pl.String(), "size": pl.Int64(), "mtime_ns": pl.Int64(), "sha256": pl.String(),
}


@functools.lru_cache(maxsize=4096)
def _real_dir(directory: str) -> str | None:
    try:
        return os.path.realpath(directory, strict=True)
    except (OSError, RuntimeError):
        return None


def _local_file_key(ref: str | None, base_dir: Path) -> tuple[str, int, int] | None:
    """(real path, size, mtime_ns) of a local image file, or None. Catalog images share a few
    folders, so each folder's real path is resolved once per load (``_real_dir``, cleared at the
    start of each load); a file that is itself a symlink is resolved in full."""
    if not ref or "://" in ref:
        return None
    joined = os.path.join(base_dir, ref)
    folder = _real_dir(os.path.dirname(joined))
    if folder is None:
        return None
    real = os.path.join(folder, os.path.basename(joined))
    try:
        stat = os.lstat(real)
        if py_stat.S_ISLNK(stat.st_mode):
            real = os.path.realpath(real, strict=True)
            stat = os.stat(real)
    except (OSError, RuntimeError):
        return None
    return (real, stat.st_size, stat.st_mtime_ns) if py_stat.S_ISREG(stat.st_mode) else None


def _load_check_cache(path: Path | None) -> dict[tuple[str, int, int], str]:
    if path is None or not path.is_file():
        return {}
    try:
        frame = pl.read_parquet(path)
    except Exception:  # a damaged cache only costs a re-check
        return {}
    return {(r, s, m): sha for r, s, m, sha in frame.iter_rows()}


def _save_check_cache(path: Path | None, entries: dict[tuple[str, int, int], str]) -> None:
    if path is None:
        return
    from scene_assets.indexes.store import write_atomic_parquet

    rows = [(*key, sha) for key, sha in entries.items()]
    write_atomic_parquet(pl.DataFrame(rows, schema=_CHECK_CACHE_SCHEMA, orient="row"), path)


def _resolve_images(rows: list[dict], base_dir: Path, options: CatalogOptions, issues: _IssueLog, column: str | None) -> None:
    """Check every image reference (decode, fetch when enabled) in a thread pool; Pillow and
    sockets release the GIL, so this overlaps I/O and decoding. Local files verified before (same
    real path, size and mtime) are taken from the check cache without decoding again."""
    cache = _load_check_cache(options.image_check_cache)
    _real_dir.cache_clear()  # folder symlinks may have moved since the last load
    verified: dict[tuple[str, int, int], str] = {}
    # Hosts that failed to resolve or connect in this load: a dead file server costs one
    # failure, not one per product (merchant catalogs put every image on one host).
    dead_hosts: dict[str, str] = {}

    root = Path(options.data_root).resolve() if options.data_root is not None else None

    def cached(key: tuple[str, int, int] | None):
        """The check cache's answer for a local file verified before (same real path, size and
        mtime, still inside the data root), or None."""
        if key is not None and key in cache and (root is None or Path(key[0]).is_relative_to(root)):
            return ImageResolution(status="ok", path=Path(key[0])), cache[key], key
        return None

    def resolve(row: dict, key: tuple[str, int, int] | None):
        host = urlsplit(row["image_ref"]).hostname if row["image_ref"] and "://" in row["image_ref"] else None
        if host in dead_hosts:
            reason = f"{row['image_ref']}: host {host!r} already failed in this load ({dead_hosts[host]})"
            return ImageResolution(status="fetch_failed", reason=reason), None, None
        resolution = resolve_image(
            row["image_ref"], base_dir=base_dir, policy=options.fetch_policy, data_root=options.data_root
        )
        sha = sha256_of_file(resolution.path) if resolution.status == "ok" and resolution.path else None
        if host and resolution.status == "fetch_failed" and _HOST_FAILURE.search(resolution.reason):
            dead_hosts.setdefault(host, resolution.reason.split(": ", 1)[-1])
        return resolution, sha, key

    # Cache hits (the common case on a re-run) are a stat() each: answering them inline avoids
    # a thread-pool round trip per product; only unseen or changed images go to the pool.
    keys = [_local_file_key(row["image_ref"], base_dir) for row in rows]
    results: list = [cached(key) for key in keys]
    pending = [i for i, result in enumerate(results) if result is None]
    if pending:
        with ThreadPoolExecutor(max_workers=max(1, options.image_workers)) as pool:
            for i, result in zip(pending, pool.map(resolve, [rows[i] for i in pending], [keys[i] for i in pending])):
                results[i] = result
    for row, (resolution, sha, key) in zip(rows, results):
        row["image_status"] = resolution.status
        row["image_path"] = str(resolution.path) if resolution.path and resolution.status == "ok" else None
        row["image_sha256"] = sha
        if resolution.status == "ok" and key is not None:
            verified[key] = sha
        if resolution.status != "ok":
            issues.add(
                row["source_row"], row["_line"], row["product_id"], "degraded", column,
                f"{resolution.status}: {resolution.reason}; product kept text-only",
            )
    if verified != cache:
        _save_check_cache(options.image_check_cache, verified)
