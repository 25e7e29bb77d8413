"""Shopper feedback on served recommendations (#20): what was served, and what shoppers did with it.

Two tables in one SQL database (SQLAlchemy Core): a SQLite file by default, PostgreSQL when the server
is given ``SCENE_MATCHER_FEEDBACK_DB_URL`` (any SQLAlchemy URL with an installed driver):

* ``served_recommendations``: one row per ``/match`` answer - its ``recommendation_id``, the scene
  photo's sha256, the index version and scoring variant that served it, the optional session id and the
  product ids in rank order. Written by :class:`RecommendationLog` in small batches from a background
  thread (a ``/match`` answer, cached ones included, must not wait for a database commit).
* ``feedback_events``: one row per shopper event (impression, click, add_to_cart, purchase) on a product
  of a served recommendation, with its rank there. :meth:`FeedbackStore.append_event` validates the event
  against the served list and commits before it returns, so an acknowledged event survives the server
  process being killed (SQLite in WAL mode with ``synchronous=NORMAL``: the commit is in the operating
  system before the call returns; a power loss may still drop the last commits:
  ``FeedbackStore(url, sqlite_synchronous="FULL")`` for that).

The scene photos themselves are kept beside it (:class:`ScenePhotoArchive`, content-addressed by the
sha256 the rows name): learning from feedback needs the photos the shoppers reacted to.

``event_id`` increases with every event, so a consumer (the Dagster sensor of #20) reads new events
after a cursor (:meth:`FeedbackStore.events_after`, :meth:`FeedbackStore.events_between`).
:func:`feedback_pairs` turns events into weighted (scene, product) training pairs, corrected for
position bias. No Dagster imports.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa

log = logging.getLogger(__name__)

EVENTS = ("impression", "click", "add_to_cart", "purchase")

_metadata = sa.MetaData()
served_recommendations = sa.Table(
    "served_recommendations", _metadata,
    sa.Column("recommendation_id", sa.String(64), primary_key=True),
    sa.Column("scene_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("index_version", sa.String(128), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(128)),
    sa.Column("product_ids", sa.Text, nullable=False),  # JSON list, rank order
    sa.Column("served_at", sa.Float, nullable=False),  # unix seconds
)
feedback_events = sa.Table(
    "feedback_events", _metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("recommendation_id", sa.String(64), sa.ForeignKey("served_recommendations.recommendation_id"),
              nullable=False, index=True),
    sa.Column("product_id", sa.String(256), nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),  # 1-based rank of the product in the served list
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("variant", sa.String(64), nullable=False),
    sa.Column("session_id", sa.String(128)),
    sa.Column("created_at", sa.Float, nullable=False),
)


class FeedbackError(ValueError):
    """An event that cannot be recorded; ``status`` is the HTTP status it is answered with."""

    status = 422


class UnknownRecommendation(FeedbackError):
    status = 404


def new_recommendation_id() -> str:
    """32 hex digits: the time in ns, then 64 random bits. Ids that grow with time are appended at the end of
    the primary-key B-tree instead of landing at random pages: inserting a batch into a 150k-row SQLite table
    took 34 instead of 69 µs per row (random uuid4). Still unguessable for anyone posting feedback."""
    return f"{time.time_ns():016x}{int.from_bytes(os.urandom(8), 'big'):016x}"


@dataclass(frozen=True)
class ServedRecommendation:
    recommendation_id: str
    scene_sha256: str
    index_version: str
    variant: str
    product_ids: Sequence[str]
    session_id: str | None = None
    served_at: float = field(default_factory=time.time)
    photo: bytes | None = field(default=None, repr=False, compare=False)  # kept by the log's photo archive

    def row(self) -> dict[str, Any]:
        return {"recommendation_id": self.recommendation_id, "scene_sha256": self.scene_sha256,
                "index_version": self.index_version, "variant": self.variant, "session_id": self.session_id,
                "product_ids": json.dumps(list(self.product_ids)), "served_at": self.served_at}


def default_url(data_dir: str | Path) -> str:
    """The embedded default: a SQLite file under the data folder."""
    path = Path(data_dir) / "feedback" / "feedback.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


ENV_FEEDBACK_DB_URL = "SCENE_MATCHER_FEEDBACK_DB_URL"


def scene_photos_dir(data_dir: str | Path) -> Path:
    """Where the server keeps the scene photos of recorded recommendations (and the pipeline reads them)."""
    return Path(data_dir) / "feedback" / "scenes"


def configured_url(data_dir: str | Path) -> str:
    """``$SCENE_MATCHER_FEEDBACK_DB_URL``, else :func:`default_url` (what the server and the pipeline share)."""
    return os.environ.get(ENV_FEEDBACK_DB_URL) or default_url(data_dir)


class FeedbackStore:
    """Served recommendations and feedback events in the database at ``url`` (tables created if missing)."""

    def __init__(self, url: str, *, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = url
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            @sa.event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(connection, _record):  # per connection: WAL lets readers run beside the writer
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
                cursor.execute("PRAGMA busy_timeout=5000")
                cursor.close()
        _metadata.create_all(self.engine)

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def record_recommendations(self, served: Sequence[ServedRecommendation]) -> None:
        """Insert served recommendations in one transaction."""
        if served:
            with self.engine.begin() as connection:
                connection.execute(served_recommendations.insert(), [s.row() for s in served])

    def served(self, recommendation_id: str) -> ServedRecommendation | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(served_recommendations).where(
                served_recommendations.c.recommendation_id == recommendation_id)).mappings().first()
        return None if row is None else _served(row)

    def latest_for_scene(self, scene_sha256: str, session_id: str | None = None) -> ServedRecommendation | None:
        """The most recent recommendation served for a scene photo (in ``session_id`` when given)."""
        query = sa.select(served_recommendations).where(served_recommendations.c.scene_sha256 == scene_sha256)
        if session_id is not None:
            query = query.where(served_recommendations.c.session_id == session_id)
        with self.engine.connect() as connection:
            row = connection.execute(query.order_by(served_recommendations.c.served_at.desc()).limit(1)).mappings().first()
        return None if row is None else _served(row)

    def append_event(self, *, product_id: str, event: str, recommendation_id: str | None = None,
                     scene_sha256: str | None = None, session_id: str | None = None) -> int:
        """Record one event on ``product_id`` of a served recommendation (by its id, or the latest one
        served for ``scene_sha256``); committed before it returns. Returns the event id. Raises
        :class:`UnknownRecommendation` (no such recommendation) or :class:`FeedbackError` (an unknown event,
        a product that recommendation did not list)."""
        if event not in EVENTS:
            raise FeedbackError(f"event {event!r}: one of {', '.join(EVENTS)}")
        if recommendation_id is not None:
            served = self.served(recommendation_id)
            where = f"recommendation {recommendation_id!r}"
        elif scene_sha256 is not None:
            served = self.latest_for_scene(scene_sha256, session_id)
            where = f"scene {scene_sha256[:16]}…" + (f" in session {session_id!r}" if session_id else "")
        else:
            raise FeedbackError("give recommendation_id (from the /match answer) or scene_sha256")
        if served is None:
            raise UnknownRecommendation(f"{where}: no recommendation served")
        try:
            rank = list(served.product_ids).index(product_id) + 1
        except ValueError:
            raise FeedbackError(f"product {product_id!r} is not in {where} "
                                f"({len(served.product_ids)} products)") from None
        with self.engine.begin() as connection:
            result = connection.execute(feedback_events.insert().values(
                recommendation_id=served.recommendation_id, product_id=product_id, rank=rank, event=event,
                variant=served.variant, session_id=session_id if session_id is not None else served.session_id,
                created_at=time.time()))
            return int(result.inserted_primary_key[0])

    def events_after(self, event_id: int, limit: int = 10_000) -> list[dict[str, Any]]:
        """Events with ids above ``event_id`` in id order (at most ``limit``): a consumer's next batch."""
        return self._events(feedback_events.c.event_id > int(event_id), limit=int(limit))

    def events_between(self, first: int, last: int) -> list[dict[str, Any]]:
        """Events with ``first <= event_id <= last`` in id order (one partition of ``feedback_events``)."""
        return self._events(feedback_events.c.event_id.between(int(first), int(last)))

    def _events(self, where, limit: int | None = None) -> list[dict[str, Any]]:
        """Events matching ``where`` in id order, each with its recommendation's scene and index version."""
        query = (sa.select(feedback_events, served_recommendations.c.scene_sha256,
                           served_recommendations.c.index_version)
                 .join(served_recommendations).where(where).order_by(feedback_events.c.event_id).limit(limit))
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def served_by_variant(self) -> pl.DataFrame:
        """variant, served (recommendations served), sessions (distinct session ids): the A/B denominators."""
        query = (sa.select(served_recommendations.c.variant, sa.func.count().label("served"),
                           sa.func.count(sa.distinct(served_recommendations.c.session_id)).label("sessions"))
                 .group_by(served_recommendations.c.variant).order_by(served_recommendations.c.variant))
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return pl.DataFrame([tuple(r) for r in rows], schema={"variant": pl.String, "served": pl.Int64, "sessions": pl.Int64},
                            orient="row")

    def max_event_id(self) -> int:
        """The newest event's id (0 when there is none): a sensor's check for new feedback."""
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.max(feedback_events.c.event_id))).scalar() or 0)

    def close(self) -> None:
        self.engine.dispose()


EVENT_COLUMNS = {"event_id": pl.Int64, "recommendation_id": pl.String, "product_id": pl.String, "rank": pl.Int64,
                 "event": pl.String, "variant": pl.String, "session_id": pl.String, "created_at": pl.Float64,
                 "scene_sha256": pl.String, "index_version": pl.String}


def events_frame(events: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """Events (as the store returns them) as a frame with a fixed schema, also when there are none."""
    return pl.DataFrame([{name: e.get(name) for name in EVENT_COLUMNS} for e in events], schema=EVENT_COLUMNS)


# How much each engagement says "this product fits this scene"; an impression alone says nothing but that
# the product was shown (it is what the position bias is estimated from, and what negatives are made of).
EVENT_WEIGHTS = {"click": 0.3, "add_to_cart": 0.6, "purchase": 1.0}


def examination_propensity(per_rank: pl.DataFrame, *, min_impressions: int = 50, floor: float = 0.05) -> dict[int, float]:
    """P(a shopper looks at rank r) relative to rank 1, from impressions and engagements by rank
    (``per_rank``: rank, impressions, engaged): the engagement rate at r over the rate at rank 1, made
    non-increasing and clipped to ``[floor, 1]`` (the examination model of click logs). Ranks with fewer
    than ``min_impressions`` impressions use the ``1 / log2(r + 1)`` prior instead."""
    prior = {int(r): 1.0 / np.log2(int(r) + 1) for r in per_rank["rank"]}
    rates = {int(r): e / i for r, i, e in per_rank.select("rank", "impressions", "engaged").iter_rows()
             if i >= min_impressions}
    top = rates.get(1)
    out: dict[int, float] = {}
    running = 1.0
    for r in sorted(prior):
        value = rates[r] / top if top and r in rates else prior[r]
        running = min(running, float(np.clip(value, floor, 1.0)))  # never more likely to be seen further down
        out[r] = running
    return out


def feedback_pairs(events: pl.DataFrame, *, min_impressions: int = 50) -> tuple[pl.DataFrame, dict[int, float]]:
    """(scene, product) training pairs from shopper events, and the propensity by rank used.

    Per served recommendation and product, the strongest engagement counts once (``EVENT_WEIGHTS``; repeated
    clicks are one); a product engaged with was shown even without an impression event. Per (scene photo,
    product) over all its recommendations: a **positive** (label 1) with weight Σ value / propensity(rank)
    (inverse propensity: a purchase at rank 8, which few shoppers look at, says more than one at rank 1);
    else, if shown, a **negative** (label 0) with weight Σ propensity(rank) (how likely it was seen and
    passed over). Columns: scene_sha256, product_id, label, weight, best_event, recommendations, shown."""
    schema = {"scene_sha256": pl.String, "product_id": pl.String, "label": pl.Int8, "weight": pl.Float64,
              "best_event": pl.String, "recommendations": pl.UInt32, "shown": pl.UInt32}
    if events.is_empty():
        return pl.DataFrame(schema=schema), {}
    values = pl.DataFrame({"event": list(EVENT_WEIGHTS), "value": list(EVENT_WEIGHTS.values())})
    per_item = (events.join(values, on="event", how="left")
                .with_columns(pl.col("value").fill_null(0.0))
                .group_by("recommendation_id", "product_id")
                .agg(pl.col("scene_sha256").first(), pl.col("rank").first(), pl.col("value").max(),
                     pl.col("event").sort_by("value").last().alias("best_event")))
    per_rank = per_item.group_by("rank").agg(pl.len().alias("impressions"),
                                             (pl.col("value") > 0).sum().alias("engaged")).sort("rank")
    propensity = examination_propensity(per_rank, min_impressions=min_impressions)
    weighted = per_item.with_columns(
        pl.col("rank").replace_strict(propensity, return_dtype=pl.Float64).alias("propensity"))
    pairs = (weighted.group_by("scene_sha256", "product_id")
             .agg((pl.col("value") / pl.col("propensity")).filter(pl.col("value") > 0).sum().alias("positive"),
                  pl.col("propensity").filter(pl.col("value") == 0).sum().alias("negative"),
                  pl.col("best_event").sort_by("value").last(),
                  pl.col("recommendation_id").n_unique().cast(pl.UInt32).alias("recommendations"),
                  pl.len().cast(pl.UInt32).alias("shown"))
             .with_columns(label=(pl.col("positive") > 0).cast(pl.Int8))
             .with_columns(weight=pl.when(pl.col("label") == 1).then(pl.col("positive")).otherwise(pl.col("negative")),
                           best_event=pl.when(pl.col("label") == 1).then(pl.col("best_event")).otherwise(pl.lit("impression")))
             .filter(pl.col("weight") > 0)
             .select(list(schema))
             .sort("scene_sha256", "product_id"))
    return pairs.cast(schema), propensity


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a rate (sensible at 0 and at few trials, unlike the normal one)."""
    if trials <= 0:
        return float("nan"), float("nan")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


RATE_EVENTS = {"ctr": ("click", "add_to_cart", "purchase"), "add_to_cart_rate": ("add_to_cart", "purchase"),
               "purchase_rate": ("purchase",)}


def variant_rates(served: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Per A/B variant: recommendations served and the share of them with at least one click (``ctr``;
    an add to cart or a purchase counts as a click too), one add to cart (or purchase) and one purchase,
    each with its 95 % Wilson interval (``*_low`` / ``*_high``). ``served``: variant, served (from
    :meth:`FeedbackStore.served_by_variant`); ``events``: the feedback events."""
    rows = []
    for variant, n in served.select("variant", "served").iter_rows():
        mine = events.filter(pl.col("variant") == variant)
        row: dict[str, Any] = {"variant": variant, "served": int(n)}
        for name, kinds in RATE_EVENTS.items():
            hits = mine.filter(pl.col("event").is_in(kinds))["recommendation_id"].n_unique()
            low, high = wilson_interval(hits, int(n))
            row |= {name.removesuffix("_rate") + "s" if name != "ctr" else "clicked": hits,
                    name: hits / n if n else float("nan"), f"{name}_low": low, f"{name}_high": high}
        rows.append(row)
    return pl.DataFrame(rows)


def _served(row) -> ServedRecommendation:
    return ServedRecommendation(row["recommendation_id"], row["scene_sha256"], row["index_version"], row["variant"],
                                json.loads(row["product_ids"]), row["session_id"], row["served_at"])


class ScenePhotoArchive:
    """Scene photos by the sha256 of their bytes (``<dir>/<first 2 hex>/<sha256>``), each written once,
    atomically (a reader never sees half a photo)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path_of(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / sha256

    def keep(self, sha256: str, data: bytes) -> bool:
        """Store ``data`` under ``sha256`` unless it is there; True when it was written now."""
        from scene_assets.indexes.store import write_atomic_bytes

        path = self.path_of(sha256)
        if path.is_file():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic_bytes(path, data)
        return True

    def read(self, sha256: str) -> bytes | None:
        path = self.path_of(sha256)
        return path.read_bytes() if path.is_file() else None


class RecommendationLog:
    """Served recommendations written to a :class:`FeedbackStore` from a background thread, in batches
    of what arrived within ``flush_interval_s``: ``submit`` is a list append. The writer sleeps between
    batches instead of waking for every recommendation (waking it ~1,400 times a second per replica cost
    the cached answers ~15 % of their throughput under load, measured with wrk). :meth:`flush` waits until
    everything submitted so far is written (``/feedback`` calls it when it does not find a
    recommendation, which may still be pending). A process killed between a submit and the next batch
    loses those recommendations (at most ``flush_interval_s`` of them); events on them are then refused
    as unknown. Write failures are logged and counted (``failures``), never raised into a request."""

    def __init__(self, store: FeedbackStore, *, flush_interval_s: float = 0.05, max_batch: int = 500,
                 photos: ScenePhotoArchive | None = None) -> None:
        self.store = store
        self.photos = photos
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.failures = 0
        # deque.append / popleft are atomic in CPython: producers on the event loop take no lock
        self._pending: collections.deque[ServedRecommendation | threading.Event] = collections.deque()
        self._wake = threading.Event()
        self._flush_requested = False
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="scene-matcher-recommendation-log", daemon=True)
        self._thread.start()

    def submit(self, served: ServedRecommendation) -> None:
        self._pending.append(served)
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout_s: float = 5.0) -> bool:
        done = threading.Event()
        self._pending.append(done)
        self._flush_requested = True
        self._wake.set()
        return done.wait(timeout_s)

    def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if not (self._closing or self._flush_requested):
                time.sleep(self.flush_interval_s)  # let a batch gather
            self._wake.clear()
            self._flush_requested = False
            batch: list[ServedRecommendation] = []
            while self._pending:
                item = self._pending.popleft()
                if isinstance(item, threading.Event):
                    self._write(batch)  # everything submitted before the flush, then wake the waiter
                    batch = []
                    item.set()
                    continue
                batch.append(item)
                if len(batch) >= self.max_batch:
                    self._write(batch)
                    batch = []
            self._write(batch)
            if self._closing and not self._pending:
                return

    def _write(self, batch: list[ServedRecommendation]) -> None:
        if not batch:
            return
        try:
            if self.photos is not None:
                # once per photo: a batch of cached answers repeats the same few scenes many times
                for sha256, photo in {s.scene_sha256: s.photo for s in batch if s.photo is not None}.items():
                    self.photos.keep(sha256, photo)
            self.store.record_recommendations(batch)
        except Exception as exc:  # noqa: BLE001 - a database or disk error must not end the writer
            self.failures += len(batch)
            log.warning("feedback store %s: %d served recommendations not recorded (%s)",
                        self.store.describe(), len(batch), exc)
