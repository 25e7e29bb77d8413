"""Batch recommendation export: a set of scene photos -> Parquet + CSV + a static HTML gallery.

Plain Python (no Dagster): the export job (pipelines/export) and tests call these.

* :func:`list_scene_images` / :func:`new_scene_files`: what is in an inbox folder, and what arrived
  after a watermark (used by the Dagster sensor's cursor).
* :func:`write_batch_manifest` / :func:`read_batch_manifest`: the list of scene files of one export
  batch, saved once so a batch can be re-run (or audited) later with exactly the same scenes.
* :func:`export_batch`: recommend for every scene (a scene that cannot be read is skipped with its
  reason, never killing the batch), write ``recommendations.parquet``, ``recommendations.csv``,
  ``failures.csv`` and ``gallery/index.html`` with thumbnails, all inside the batch's own folder.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from PIL import Image

from scene_assets.indexes.store import write_atomic_bytes, write_atomic_parquet
from scene_assets.images import open_rgb
from scene_assets.ranking import FACTORS
from scene_assets.progress import track

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
FACTOR_COLUMNS = FACTORS  # every re-ranking factor gets a column
SCENE_THUMB_PX = 480
PRODUCT_THUMB_PX = 160

RECOMMENDATION_SCHEMA = {
    "batch": pl.String, "scene": pl.String, "scene_path": pl.String, "rank": pl.Int32,
    "product_id": pl.String, "title": pl.String, "category": pl.String, "score": pl.Float64,
    "confidence": pl.Float64, "calibrated": pl.Boolean, "room_type": pl.String, "style": pl.String,
    **{f"factor_{name}": pl.Float64 for name in FACTOR_COLUMNS},
    "index_version": pl.String,
}
FAILURE_SCHEMA = {"batch": pl.String, "scene": pl.String, "scene_path": pl.String, "reason": pl.String}


# --------------------------------------------------------------------------------------------
# inbox and batch manifests


@dataclass(frozen=True, order=True)
class SceneFile:
    mtime_ns: int
    name: str  # path relative to the inbox
    size: int = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "mtime_ns": self.mtime_ns}


def list_scene_images(folder: str | os.PathLike) -> list[SceneFile]:
    """Image files under ``folder`` (recursively; hidden files and partial uploads skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            st = path.stat()
        except OSError:
            continue  # removed while listing
        if path.is_file():
            found.append(SceneFile(st.st_mtime_ns, relative.as_posix(), st.st_size))
    return sorted(found, key=lambda f: f.name)


def new_scene_files(folder: str | os.PathLike, watermark: tuple[int, str] | None) -> list[SceneFile]:
    """Files whose (mtime, name) is after ``watermark`` - i.e. added or rewritten since then."""
    files = list_scene_images(folder)
    if watermark is None:
        return files
    mark = (int(watermark[0]), str(watermark[1]))
    return [f for f in files if (f.mtime_ns, f.name) > mark]


def watermark_of(files: list[SceneFile], previous: tuple[int, str] | None = None) -> tuple[int, str] | None:
    marks = [(f.mtime_ns, f.name) for f in files] + ([tuple(previous)] if previous else [])
    return max(marks) if marks else None


def batch_key(prefix: str, files: list[SceneFile], when: float | None = None) -> str:
    """A readable, unique partition key: prefix, UTC time, and a hash of the file list."""
    digest = hashlib.sha256(json.dumps([f.to_dict() for f in files], sort_keys=True).encode()).hexdigest()[:8]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when if when is not None else time.time()))
    return f"{prefix}-{stamp}-{digest}"


def write_batch_manifest(path: Path, key: str, inbox: str | os.PathLike, files: list[SceneFile]) -> Path:
    payload = {"batch": key, "inbox": str(Path(inbox).resolve()), "files": [f.to_dict() for f in files],
               "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_atomic_bytes(path, json.dumps(payload, indent=1).encode())
    return path


def read_batch_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path}: no manifest for this export batch (was the partition added by hand?)") from exc
    if not isinstance(manifest.get("files"), list):
        raise ValueError(f"{path}: manifest has no 'files' list")
    return manifest


# --------------------------------------------------------------------------------------------
# running a batch


@dataclass
class BatchResult:
    recommendations: pl.DataFrame
    failures: pl.DataFrame
    scenes: int
    seconds: float
    paths: dict[str, Path]
    latencies_ms: list[float]


def _thumbnail(image: Image.Image, size: int, dest: Path) -> None:
    thumb = image.copy()
    thumb.thumbnail((size, size))
    dest.parent.mkdir(parents=True, exist_ok=True)
    thumb.save(dest, "JPEG", quality=85)


def _product_thumb(image_path: str | None, thumbs: Path, cache: dict[str, str | None]) -> str | None:
    if not image_path:
        return None
    if image_path not in cache:
        name = hashlib.sha256(image_path.encode()).hexdigest()[:16] + ".jpg"
        try:
            _thumbnail(open_rgb(Path(image_path)), PRODUCT_THUMB_PX, thumbs / "products" / name)
            cache[image_path] = f"thumbs/products/{name}"
        except OSError:
            cache[image_path] = None  # the gallery shows a placeholder; the export rows are unaffected
    return cache[image_path]


def export_batch(
    recommender: Any,
    *,
    batch: str,
    inbox: str | os.PathLike,
    files: list[str],
    out_dir: str | os.PathLike,
    k: int = 10,
    index_version: str = "",
    gallery: bool = True,
    recommend_kwargs: dict | None = None,
) -> BatchResult:
    """Recommend ``k`` products for each scene file (relative to ``inbox``) and write the outputs
    into ``out_dir``. A scene that cannot be read or scored is recorded in ``failures`` with the
    reason and the batch goes on."""
    started = time.perf_counter()
    inbox, out_dir = Path(inbox), Path(out_dir)
    gallery_dir = out_dir / "gallery"
    rows: list[dict] = []
    failures: list[dict] = []
    scenes_html: list[dict] = []
    product_thumbs: dict[str, str | None] = {}
    latencies = []
    for name in track(files, f"export {batch}", unit="scene"):
        path = inbox / name
        scene = Path(name).stem
        try:
            image = open_rgb(path)
            t0 = time.perf_counter()
            result = recommender.recommend(image, k=k, **(recommend_kwargs or {}))
            latencies.append((time.perf_counter() - t0) * 1000)
        except (OSError, ValueError) as exc:  # unreadable / vanished file, or a scene the engine rejects
            failures.append({"batch": batch, "scene": scene, "scene_path": str(path), "reason": str(exc)})
            continue
        analysis = result.scene
        for item in result.items:
            rows.append({
                "batch": batch, "scene": scene, "scene_path": str(path), "rank": item.rank,
                "product_id": item.product_id, "title": item.title, "category": item.category,
                "score": round(item.score, 5), "confidence": round(item.confidence, 5), "calibrated": result.calibrated,
                "room_type": analysis.room_type, "style": analysis.style,
                **{f"factor_{f}": round(item.factors.get(f, float("nan")), 5) for f in FACTOR_COLUMNS},
                "index_version": index_version,
            })
        if gallery:
            thumb = f"thumbs/scenes/{hashlib.sha256(name.encode()).hexdigest()[:16]}.jpg"
            _thumbnail(image, SCENE_THUMB_PX, gallery_dir / thumb)
            scenes_html.append({
                "scene": scene, "thumb": thumb, "analysis": analysis, "calibrated": result.calibrated,
                "items": [(item, _product_thumb(item.image_path, gallery_dir / "thumbs", product_thumbs)) for item in result.items],
            })
    recommendations = pl.DataFrame(rows, schema=RECOMMENDATION_SCHEMA)
    failure_frame = pl.DataFrame(failures, schema=FAILURE_SCHEMA)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "parquet": out_dir / "recommendations.parquet",
        "csv": out_dir / "recommendations.csv",
        "failures": out_dir / "failures.csv",
    }
    write_atomic_parquet(recommendations, paths["parquet"])
    _write_atomic_text(paths["csv"], recommendations.write_csv())
    _write_atomic_text(paths["failures"], failure_frame.write_csv())
    if gallery:
        paths["gallery"] = gallery_dir / "index.html"
        _write_atomic_text(paths["gallery"], render_gallery(batch, scenes_html, failures, index_version, k))
    return BatchResult(recommendations, failure_frame, len(files), time.perf_counter() - started, paths, latencies)


def _write_atomic_text(path: Path, text: str) -> None:
    write_atomic_bytes(path, text.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# gallery

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;background:#f6f5f2;color:#222}
h1{font-size:22px;margin:0 0 4px} .sub{color:#666;font-size:13px;margin-bottom:20px}
.scene{background:#fff;border-radius:10px;padding:16px;margin-bottom:22px;box-shadow:0 1px 3px #0002;display:flex;gap:18px}
.scene-info{flex:0 0 320px} .scene-info img{width:320px;border-radius:6px;display:block}
.scene-info h2{font-size:15px;margin:10px 0 4px;word-break:break-all} .meta{font-size:12px;color:#555;line-height:1.5}
.swatches{display:flex;gap:4px;margin-top:6px}.sw{height:16px;border-radius:3px;border:1px solid #0002}
.products{display:flex;flex-wrap:wrap;gap:10px;align-content:flex-start}
.card{width:150px;font-size:12px;border:1px solid #e4e2dc;border-radius:8px;padding:6px;background:#fcfcfb}
.card img,.ph{width:148px;height:148px;object-fit:contain;background:#fff;border-radius:4px;display:block}
.ph{display:flex;align-items:center;justify-content:center;color:#aaa;background:#eee}
.rank{font-weight:600}.score{color:#1a6b3c}.pid{color:#888;font-family:monospace;font-size:11px}
.failures{background:#fff3f0;border-radius:8px;padding:12px;font-size:13px}
"""


def _swatches(analysis: Any) -> str:
    from scene_assets.vocabulary import COLOR_RGB

    parts = []
    for colour in analysis.palette:
        rgb = COLOR_RGB.get(colour.name, (200, 200, 200))
        parts.append(
            f'<div class="sw" title="{html.escape(colour.name)} {colour.share:.0%}" '
            f'style="width:{max(8, int(colour.share * 200))}px;background:rgb{tuple(int(c) for c in rgb)}"></div>'
        )
    return '<div class="swatches">' + "".join(parts) + "</div>"


def render_gallery(batch: str, scenes: list[dict], failures: list[dict], index_version: str, k: int) -> str:
    """Static HTML: per scene its thumbnail, analysis and palette, then its top-k product cards."""
    esc = html.escape
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>scene-matcher export {esc(batch)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Recommendations: {esc(batch)}</h1>",
        f'<div class="sub">{len(scenes)} scenes, top {k} products each; index {esc(index_version or "?")}; '
        f"generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</div>",
    ]
    for scene in scenes:
        analysis = scene["analysis"]
        rooms = sorted(analysis.room_probs.items(), key=lambda kv: -kv[1])[:2]
        styles = sorted(analysis.style_probs.items(), key=lambda kv: -kv[1])[:2]
        confidence_note = "calibrated" if scene["calibrated"] else "uncalibrated confidence"
        out.append('<section class="scene"><div class="scene-info">')
        out.append(f'<img src="{esc(scene["thumb"])}" alt="scene {esc(scene["scene"])}">')
        out.append(f"<h2>{esc(scene['scene'])}</h2><div class=meta>")
        out.append("room: " + ", ".join(f"{esc(r)} {p:.0%}" for r, p in rooms) + "<br>")
        out.append("style: " + ", ".join(f"{esc(s)} {p:.0%}" for s, p in styles) + "<br>")
        out.append(f"{confidence_note}</div>{_swatches(analysis)}</div><div class=products>")
        for item, thumb in scene["items"]:
            image = (f'<img src="{esc(thumb)}" alt="{esc(item.title or item.product_id)}">' if thumb
                     else '<div class="ph">no image</div>')
            out.append(
                f'<div class="card">{image}<div><span class="rank">#{item.rank}</span> {esc(item.title or "")}</div>'
                f'<div class="pid">{esc(item.product_id)}</div><div>{esc(item.category)}</div>'
                f'<div class="score">score {item.score:.3f} · conf {item.confidence:.2f}</div></div>'
            )
        out.append("</div></section>")
    if failures:
        out.append('<div class="failures"><b>Skipped scenes</b><ul>')
        out.extend(f"<li>{esc(f['scene_path'])}: {esc(f['reason'])}</li>" for f in failures)
        out.append("</ul></div>")
    out.append("</body></html>")
    return "\n".join(out)
