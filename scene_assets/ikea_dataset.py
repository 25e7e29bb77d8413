"""Fetch the public IKEA interior dataset and convert it to the project's labeled format.

Source: Tautkute et al., "What Looks Good with my Sofa: Multimodal Search Engine for Interior
Design", FedCSIS 2017. The authors published the scraped data in a public GitHub repository
(``ivonatau/ikea`` as cited by the paper; the URL is a parameter because it may move). The
images are the property of IKEA and may be used for non-commercial research only: the converted
data must stay out of this repository.

``scene-matcher data fetch-ikea DEST`` calls :func:`download_ikea`, which downloads the
repository archive (a zip of the default branch), extracts it to a temporary folder and calls
:func:`convert_raw_ikea`. **The download itself is not tested** (the development and CI machines
have no internet); the tests exercise the converter, the archive extraction and the offline
error on fabricated data. If the real archive's layout differs from the assumptions below, the
converter reports what it could not use in :class:`ConvertStats` ``problems`` instead of guessing.

Assumed raw layout (paths relative to the extracted archive root; file *names* are searched for
anywhere below the root, so an extra top-level folder does not matter)::

    images/room_scenes/<room folder>/<scene>.jpg   room photos; <room folder> names the room
                                                   type (e.g. "bedroom", "living_room",
                                                   "children_room", "home_office", "outdoor");
                                                   a flat room_scenes/ works too, then the room
                                                   type comes from a name prefix like
                                                   "bedroom_choose-your-outfit....jpg"
    images/objects/[<category>/]<product_id>.jpg   product photos named by article number
                                                   (e.g. 802.538.09.jpg)
    text_data/img_to_items.json                    {scene image path or name: [product ids or
                                                   product image paths]}; also accepted under the
                                                   names room_to_items / scene_to_items, or the
                                                   inverse item_to_room / item_to_rooms
                                                   ({product: [scenes]}), as .json or .p
                                                   (pickle of plain dicts/lists/strings, read with
                                                   an unpickler that refuses any class or function)
    text_data/products_dict.json                   {product id or image path: {name, type, color,
                                                   size, description, ...}} (a list of records
                                                   with an id field also works); also accepted as
                                                   products.json, items.json, product_info.json or
                                                   .p; a plain string value is the description

What the converter writes (``dest``): ``products.csv``, ``scenes.csv``, ``scene_products.csv``,
``images/products/<product_id>.jpg``, ``images/scenes/<scene_id>.jpg`` and a ``README.md``
(source and licence). Scene ids are ``scene_`` plus the first 10 hex digits of the sha1 of the
scene's relative path in the raw tree (stable across runs); captions come from the scene file
name ("ikea-a-calm-bedroom__1364309611116-s4.jpg" -> "a calm bedroom"). Products keep their
article number as id. A product whose image is missing or unreadable gets an empty ``image``
(the format allows catalog gaps); a scene whose image is missing or unreadable is skipped, and
both are counted and described in the returned stats.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import http.client
import io
import json
import pickle
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from PIL import Image, UnidentifiedImageError

__all__ = [
    "DEFAULT_ARCHIVE_URL",
    "ROOM_TYPES",
    "ConvertStats",
    "IkeaDatasetError",
    "IkeaDownloadError",
    "convert_raw_ikea",
    "download_ikea",
    "extract_archive",
    "main",
    "room_type_from_name",
]

DEFAULT_ARCHIVE_URL = "https://github.com/ivonatau/ikea/archive/refs/heads/master.zip"
DEFAULT_TIMEOUT_S = 60.0

ROOM_TYPES = (
    "Bedroom", "Dining", "Living Room", "Kitchen", "Baby Children Room", "Outdoor", "Home Office",
    "Hallway", "Laundry",
)

PRODUCT_COLUMNS = ("product_id", "name", "type", "color", "size", "description", "image")
SCENE_COLUMNS = ("scene_id", "image", "room_type", "caption")
SCENE_PRODUCT_COLUMNS = ("scene_id", "product_id")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
MAPPING_STEMS = ("img_to_items", "room_to_items", "scene_to_items", "rooms_to_items")
INVERSE_MAPPING_STEMS = ("item_to_room", "item_to_rooms", "items_to_rooms", "item_to_img")
PRODUCT_STEMS = ("products_dict", "products", "items", "product_info", "items_dict", "item_info")
SCENE_DIR_NAMES = ("room_scenes", "rooms", "scenes", "interiors", "room_images")
# folders that only group files and say nothing about the room type
_GENERIC_DIRS = {"images", "image", "img", "imgs", "data", "raw", *SCENE_DIR_NAMES}

_ROOM_KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("baby", "child", "children", "childrens", "kid", "kids", "nursery"), "Baby Children Room"),
    (("bedroom", "bed room", "sleep"), "Bedroom"),
    (("dining", "dinning"), "Dining"),
    (("living",), "Living Room"),
    (("kitchen",), "Kitchen"),
    (("outdoor", "garden", "balcony", "patio", "terrace"), "Outdoor"),
    (("office", "workspace", "study"), "Home Office"),
    (("hallway", "hall", "entrance"), "Hallway"),
    (("laundry",), "Laundry"),
)

_FIELD_ALIASES = {
    "name": ("name", "title", "product_name", "series"),
    "type": ("type", "product_type", "category", "type_name", "typename"),
    "color": ("color", "colour", "colors", "colours"),
    "size": ("size", "dimensions", "measure", "measurements"),
    "description": ("description", "desc", "text", "details", "info"),
}
_ID_FIELDS = ("product_id", "id", "item_id", "article", "article_number", "image", "img", "file")
_ARTICLE_RE = re.compile(r"^\d{3}\.\d{3}\.\d{2}$")


class IkeaDatasetError(RuntimeError):
    """The raw data cannot be converted (nothing usable found)."""


class IkeaDownloadError(IkeaDatasetError):
    """The archive could not be downloaded or is not a zip archive."""


@dataclass
class ConvertStats:
    """What :func:`convert_raw_ikea` did; ``problems`` lists every skipped or degraded entry."""

    products: int = 0
    products_with_image: int = 0
    products_without_image: int = 0
    scenes: int = 0
    scenes_skipped: int = 0
    links: int = 0
    links_dropped: int = 0
    unknown_room_types: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------


def _fetch(url: str, target: Path, timeout: float) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": "scene-matcher-data-fetch/1"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(target, "wb") as out:
            shutil.copyfileobj(resp, out, length=1 << 20)
    except urllib.error.HTTPError as exc:
        raise IkeaDownloadError(f"Downloading {url} failed: HTTP {exc.code} {exc.reason}. "
                                "Check the URL (pass --url to use a mirror or another branch).") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise IkeaDownloadError(
            f"Could not download the IKEA dataset from {url}: {reason}. This needs internet access "
            "(are you offline or behind a proxy?). Alternatively download the archive on another "
            "machine, extract it, and run: python -m scene_assets.ikea_dataset convert RAW_DIR DEST"
        ) from exc


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract a zip archive safely into ``target``; return the dataset root inside it.

    Members that would land outside ``target`` (absolute paths, ``..``) are refused. When the
    archive holds a single top-level folder (as GitHub archives do) that folder is returned.
    """
    archive, target = Path(archive), Path(target)
    if not zipfile.is_zipfile(archive):
        raise IkeaDownloadError(f"{archive} is not a zip archive (did the download return an HTML page?)")
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            dest = (root / Path(*name.parts)).resolve() if name.parts else root
            if name.is_absolute() or ".." in name.parts or (dest != root and root not in dest.parents):
                raise IkeaDownloadError(f"refusing to extract unsafe archive member {info.filename!r}")
        zf.extractall(root)
    entries = [p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return root


def download_ikea(
    dest: Path,
    url: str = DEFAULT_ARCHIVE_URL,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    keep_raw: Path | None = None,
) -> ConvertStats:
    """Download the IKEA dataset archive from ``url`` and convert it into ``dest``.

    The zip is downloaded with :mod:`urllib` (``timeout`` seconds per network operation) into a
    temporary folder, extracted there (or into ``keep_raw`` when given, which is kept) and passed
    to :func:`convert_raw_ikea`. Raises :class:`IkeaDownloadError` with an explanation when the
    network is unreachable, the server answers an error, or the payload is not a zip.
    Untested against the real server (no internet where this project is developed).
    """
    with tempfile.TemporaryDirectory(prefix="ikea-download-") as tmp:
        archive = Path(tmp) / "ikea.zip"
        _fetch(url, archive, timeout)
        raw_target = Path(keep_raw) if keep_raw is not None else Path(tmp) / "raw"
        raw_root = extract_archive(archive, raw_target)
        archive.unlink()
        return convert_raw_ikea(raw_root, dest)


# --------------------------------------------------------------------------------------
# reading the raw metadata
# --------------------------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only built-in containers and scalars; any class/function reference is refused."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")


def _load_data_file(path: Path) -> Any:
    """Load a .json file or a pickle of plain data; raise IkeaDatasetError when it is unreadable."""
    try:
        if path.suffix.lower() == ".json":
            return json.loads(path.read_text("utf-8"))
        data = path.read_bytes()
        try:
            return _PlainUnpickler(io.BytesIO(data)).load()
        except UnicodeDecodeError:  # python 2 pickles of byte strings
            return _PlainUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise IkeaDatasetError(f"cannot read {path}: {exc}") from exc


def _find_data_file(raw: Path, stems: Iterable[str]) -> Path | None:
    candidates = sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in (".json", ".p", ".pkl", ".pickle"))
    for stem in stems:
        for suffix in (".json", ".p", ".pkl", ".pickle"):
            for p in candidates:
                if p.stem.lower() == stem and p.suffix.lower() == suffix:
                    return p
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value if v is not None).strip()
    return " ".join(str(value).split())


def _key_stem(key: Any) -> str:
    """'images/bed/802.538.09.jpg' -> '802.538.09'; also accepts bare ids."""
    s = _text(key).replace("\\", "/").rstrip("/")
    name = s.rsplit("/", 1)[-1]
    lower = name.lower()
    for suf in IMAGE_SUFFIXES:
        if lower.endswith(suf):
            return name[: -len(suf)]
    return name


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, (list, tuple, set)):
        return list(value)
    if isinstance(value, (str, bytes)):
        return [value]
    return None


def room_type_from_name(name: str) -> str | None:
    """Map a room folder name or file-name prefix to one of :data:`ROOM_TYPES` (None if unknown)."""
    s = re.sub(r"[^a-z]+", " ", name.lower()).strip()
    words = set(s.split())
    joined = s.replace(" ", "")
    for keys, room in _ROOM_KEYWORDS:
        for k in keys:
            if (" " in k and k in s) or k in words or (len(k) >= 6 and k in joined):
                return room
    return None


def _room_prefix(stem: str) -> tuple[str | None, str]:
    """'bedroom_choose-your-outfit' -> ('Bedroom', 'choose-your-outfit'); (None, stem) otherwise."""
    head, sep, tail = stem.rpartition("_")
    if sep and head and tail:
        room = room_type_from_name(head)
        if room:
            return room, tail
    return None, stem


def _caption_from_name(stem: str) -> str:
    s = re.sub(r"__.*$", "", stem)  # "...__1364309611116-s4" (image id and size suffix)
    s = _room_prefix(s)[1]
    s = re.sub(r"^ikea[-_ ]+", "", s, flags=re.IGNORECASE)
    s = re.sub(r"[-_]+", " ", s)
    s = re.sub(r"\b\d{6,}\b", " ", s)
    return " ".join(s.split())


# --------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------


def _image_index(raw: Path) -> list[Path]:
    return sorted(p for p in raw.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _is_scene_path(rel: PurePosixPath) -> bool:
    parts = [p.lower() for p in rel.parts[:-1]]
    return any(p in SCENE_DIR_NAMES for p in parts)


def _room_type_for(rel: PurePosixPath) -> str | None:
    """Room type from the nearest non-generic parent folder, else from a 'room_' file-name prefix."""
    for part in reversed(rel.parts[:-1]):
        if part.lower() in _GENERIC_DIRS:
            continue
        room = room_type_from_name(part)
        if room:
            return room
    return _room_prefix(re.sub(r"__.*$", "", rel.stem))[0]


def _store_image(src: Path, dst: Path) -> None:
    """Copy RGB JPEG files byte for byte; convert anything else to JPEG. Raises on unreadable files."""
    with Image.open(src) as im:
        im.load()  # decodes the whole file: truncated or corrupt images raise here
        copy_bytes = im.format == "JPEG" and im.mode == "RGB"
        img = None if copy_bytes else im.convert("RGB")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if img is None:
        shutil.copyfile(src, dst)
    else:
        img.save(dst, format="JPEG", quality=92)


def _product_records(data: Any, stats: ConvertStats) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    items: list[tuple[Any, Any]] = []
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        for rec in data:
            if isinstance(rec, dict):
                key = next((rec[k] for k in _ID_FIELDS if rec.get(k)), None)
                items.append((key, rec))
            else:
                stats.problems.append(f"products: ignored a non-record entry {str(rec)[:60]!r}")
    else:
        stats.problems.append("products file: expected a dict or a list of records")
        return out
    for key, rec in items:
        pid = _key_stem(key) if key is not None else ""
        if not pid:
            stats.problems.append(f"products: record without an id ignored: {str(rec)[:60]!r}")
            continue
        fields = {k: "" for k in _FIELD_ALIASES}
        if isinstance(rec, dict):
            low = {str(k).lower(): v for k, v in rec.items()}
            for col, aliases in _FIELD_ALIASES.items():
                for a in aliases:
                    if a in low and _text(low[a]):
                        fields[col] = _text(low[a])
                        break
        else:
            fields["description"] = _text(rec)
        out[pid] = fields
    return out


def _scene_mapping(raw: Path, stats: ConvertStats) -> dict[str, list[str]]:
    """Return {scene key (raw path or name): [product ids]}."""
    path = _find_data_file(raw, MAPPING_STEMS)
    inverse = False
    if path is None:
        path = _find_data_file(raw, INVERSE_MAPPING_STEMS)
        inverse = path is not None
    if path is None:
        raise IkeaDatasetError(
            f"No scene-to-products mapping found under {raw} (looked for "
            f"{', '.join(MAPPING_STEMS + INVERSE_MAPPING_STEMS)} as .json/.p)"
        )
    data = _load_data_file(path)
    if not isinstance(data, dict):
        raise IkeaDatasetError(f"{path.name}: expected a dict, found {type(data).__name__}")
    mapping: dict[str, list[str]] = {}
    for key, value in data.items():
        values = _as_list(value)
        if values is None:
            stats.problems.append(f"{path.name}: entry {_text(key)[:80]!r} is not a list; ignored")
            continue
        if inverse:
            pid = _key_stem(key)
            for scene in values:
                mapping.setdefault(_text(scene), []).append(pid)
        else:
            mapping.setdefault(_text(key), []).extend(_key_stem(v) for v in values)
    return mapping


def _resolve_scene(key: str, by_rel: dict[str, Path], by_name: dict[str, list[Path]],
                   by_stem: dict[str, list[Path]]) -> Path | None:
    k = key.replace("\\", "/").lstrip("./")
    if k in by_rel:
        return by_rel[k]
    name = k.rsplit("/", 1)[-1]
    for table, lookup in ((by_name, name), (by_stem, _key_stem(name))):
        hits = table.get(lookup, [])
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:  # prefer a path that ends like the key
            tail = [h for h in hits if h.as_posix().endswith(k)]
            if len(tail) == 1:
                return tail[0]
    return None


def _csv_write(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


_README = """# IKEA interior dataset (converted)

Converted by `scene_assets.ikea_dataset` from the public dataset of Tautkute et al.,
"What Looks Good with my Sofa: Multimodal Search Engine for Interior Design" (FedCSIS 2017).
The images are the property of IKEA and may be used for non-commercial research only; do not
commit this folder to a repository or redistribute it.

Format: the project's labeled dataset format (products.csv, scenes.csv, scene_products.csv,
images/products/<product_id>.jpg, images/scenes/<scene_id>.jpg).

Conversion: {products} products ({without} without an image), {scenes} scenes ({skipped} skipped),
{links} scene-product links ({dropped} dropped), {problems} problems reported.
"""


def convert_raw_ikea(raw_dir: Path, dest: Path) -> ConvertStats:
    """Convert the raw IKEA layout under ``raw_dir`` (see module docstring) into ``dest``.

    Writes the CSVs, copies/converts images and returns :class:`ConvertStats`. Malformed entries
    (missing or unreadable images, non-list mapping values, records without id) are skipped or
    degraded and listed in ``stats.problems``; :class:`IkeaDatasetError` is raised only when no
    mapping file exists or no scene at all could be converted.
    """
    raw, dest = Path(raw_dir), Path(dest)
    if not raw.is_dir():
        raise IkeaDatasetError(f"{raw} is not a directory")
    stats = ConvertStats()
    mapping = _scene_mapping(raw, stats)
    prod_file = _find_data_file(raw, PRODUCT_STEMS)
    records: dict[str, dict[str, str]] = {}
    if prod_file is not None:
        try:
            records = _product_records(_load_data_file(prod_file), stats)
        except IkeaDatasetError as exc:
            stats.problems.append(f"product metadata ignored: {exc}")
    else:
        stats.problems.append("no product metadata file found; names, types etc. are left empty")

    images = _image_index(raw)
    rels = {p: PurePosixPath(p.relative_to(raw).as_posix()) for p in images}
    by_rel = {rels[p].as_posix(): p for p in images}
    by_name: dict[str, list[Path]] = {}
    by_stem: dict[str, list[Path]] = {}
    for p in images:
        by_name.setdefault(p.name, []).append(p)
        by_stem.setdefault(p.stem, []).append(p)
    scene_paths = {p for p in images if _is_scene_path(rels[p])}

    # scenes --------------------------------------------------------------------------------
    (dest / "images" / "scenes").mkdir(parents=True, exist_ok=True)
    (dest / "images" / "products").mkdir(parents=True, exist_ok=True)
    scene_rows: list[list[str]] = []
    scene_products: dict[str, set[str]] = {}
    used_scene_files: set[Path] = set()
    for key in sorted(mapping):
        src = _resolve_scene(key, by_rel, by_name, by_stem)
        if src is None:
            stats.scenes_skipped += 1
            stats.problems.append(f"scene {key!r}: image not found; scene skipped")
            continue
        rel = rels[src]
        scene_id = "scene_" + hashlib.sha1(rel.as_posix().encode("utf-8")).hexdigest()[:10]
        if scene_id in scene_products:  # two keys naming the same file
            scene_products[scene_id].update(mapping[key])
            continue
        try:
            _store_image(src, dest / "images" / "scenes" / f"{scene_id}.jpg")
        except (OSError, UnidentifiedImageError) as exc:
            stats.scenes_skipped += 1
            stats.problems.append(f"scene {key!r}: unreadable image ({exc.__class__.__name__}); scene skipped")
            continue
        used_scene_files.add(src)
        room = _room_type_for(rel)
        if room is None:
            stats.unknown_room_types += 1
            parent = rel.parts[-2] if len(rel.parts) > 1 else ""
            room = "Unknown" if not parent or parent.lower() in _GENERIC_DIRS else parent.replace("_", " ").title()
            stats.problems.append(f"scene {rel.as_posix()!r}: room type not recognised, using {room!r}")
        scene_rows.append([scene_id, f"images/scenes/{scene_id}.jpg", room, _caption_from_name(src.stem)])
        scene_products[scene_id] = set(mapping[key])
    if not scene_rows:
        raise IkeaDatasetError(f"no scene of {raw} could be converted: {stats.problems[:5]}")

    # products ------------------------------------------------------------------------------
    product_ids = set(records)
    for pids in scene_products.values():
        product_ids.update(p for p in pids if p)
    product_rows: list[list[str]] = []
    for pid in sorted(product_ids):
        candidates = [p for p in by_stem.get(pid, []) if p not in scene_paths and p not in used_scene_files]
        image = ""
        if not candidates:
            stats.problems.append(f"product {pid}: no image found; image left empty")
        else:
            src = candidates[0]
            try:
                _store_image(src, dest / "images" / "products" / f"{pid}.jpg")
                image = f"images/products/{pid}.jpg"
            except (OSError, UnidentifiedImageError) as exc:
                stats.problems.append(f"product {pid}: unreadable image ({exc.__class__.__name__}); image left empty")
        rec = records.get(pid, {})
        if not rec:
            stats.problems.append(f"product {pid}: no metadata record")
        product_rows.append([pid, rec.get("name", ""), rec.get("type", ""), rec.get("color", ""),
                             rec.get("size", ""), rec.get("description", ""), image])
        if image:
            stats.products_with_image += 1
        else:
            stats.products_without_image += 1
    stats.products = len(product_rows)
    stats.scenes = len(scene_rows)

    link_rows: list[list[str]] = []
    for scene_id, _img, _room, _cap in scene_rows:
        for pid in sorted(scene_products[scene_id]):
            if not pid:
                stats.links_dropped += 1
                continue
            link_rows.append([scene_id, pid])
    stats.links = len(link_rows)

    _csv_write(dest / "products.csv", PRODUCT_COLUMNS, product_rows)
    _csv_write(dest / "scenes.csv", SCENE_COLUMNS, scene_rows)
    _csv_write(dest / "scene_products.csv", SCENE_PRODUCT_COLUMNS, link_rows)
    (dest / "README.md").write_text(_README.format(
        products=stats.products, without=stats.products_without_image, scenes=stats.scenes,
        skipped=stats.scenes_skipped, links=stats.links, dropped=stats.links_dropped,
        problems=len(stats.problems)), encoding="utf-8")
    return stats


# --------------------------------------------------------------------------------------
# command line (the project CLI wires `scene-matcher data fetch-ikea DEST` to download_ikea)
# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scene_assets.ikea_dataset", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    fetch = sub.add_parser("fetch", help="download the archive and convert it into DEST")
    fetch.add_argument("dest", type=Path)
    fetch.add_argument("--url", default=DEFAULT_ARCHIVE_URL)
    fetch.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    fetch.add_argument("--keep-raw", type=Path, default=None, help="extract the raw archive here and keep it")
    conv = sub.add_parser("convert", help="convert an already extracted raw tree RAW into DEST")
    conv.add_argument("raw", type=Path)
    conv.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "fetch":
            stats = download_ikea(args.dest, args.url, timeout=args.timeout, keep_raw=args.keep_raw)
        else:
            stats = convert_raw_ikea(args.raw, args.dest)
    except IkeaDatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = {k: v for k, v in stats.as_dict().items() if k != "problems"}
    print(json.dumps(summary, indent=1))
    for p in stats.problems[:20]:
        print(f"  - {p}", file=sys.stderr)
    if len(stats.problems) > 20:
        print(f"  ... and {len(stats.problems) - 20} more problems", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
