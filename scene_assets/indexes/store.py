"""The one place for durable files: atomic writes, fsync, sha256, manifests and folder publish.

Used by the indexes, the vector sets, the catalog, the bundle and the export (no heavy imports).

* ``write_atomic`` (and ``_bytes`` / ``_parquet``): one file through a temp file in the same folder,
  fsynced, renamed over the target.
* ``replace_together``: several files of one folder staged in temp files, then renamed in order
  (the flat index: ``index.faiss`` first, ``manifest.json`` last).
* ``new_version``: a whole folder written as a temp folder, fsynced, renamed to its content-derived
  name, older versions pruned (the sharded index's trained / shard / merged folders).
* Manifests: JSON with sorted keys; ``files`` tables of ``{name: {sha256, bytes}}`` checked by
  ``verify_files``. Errors are ``IndexCorruptError`` and name the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from scene_assets.indexes.errors import IndexCorruptError

if TYPE_CHECKING:
    import polars as pl

MANIFEST_FILE = "manifest.json"
TMP_DIR_PREFIX = ".tmp-"


def sha256_of_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks (catalogs, weights and indexes can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """fsync a folder (its entries: renames into it survive a crash); not every platform allows it."""
    with contextlib.suppress(OSError):
        fsync_file(path)


# --------------------------------------------------------------------------------------------
# single files


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through ``write(handle)`` to a temp file in the same folder, fsync, then rename over
    ``path``: readers see the old file or the new one, never a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (a temp file, e.g. from ``replace_together``) and fsync it."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic_bytes(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))


def write_atomic_parquet(frame: pl.DataFrame, path: Path) -> None:
    write_atomic(path, frame.write_parquet)


@contextlib.contextmanager
def replace_together(directory: Path) -> Iterator[Callable[[str], Path]]:
    """Stage new versions of several files of ``directory``: ``stage(name)`` returns a temp file in
    the folder to write (and fsync) the new content to. On a clean exit the temp files are renamed
    over their names in the order they were staged, then the folder is fsynced; temp files are
    removed either way, so a failure leaves every old file as it was."""
    staged: list[tuple[Path, str]] = []

    def stage(name: str) -> Path:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
        staged.append((Path(tmp), name))
        return Path(tmp)

    try:
        yield stage
        for tmp, name in staged:
            os.replace(tmp, directory / name)
        fsync_dir(directory)
    finally:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


# --------------------------------------------------------------------------------------------
# manifests


def json_default(obj: Any) -> Any:
    """numpy scalars/arrays and paths in caller-supplied manifest fields."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"manifest value of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True, default=json_default) + "\n").encode("utf-8")


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    write_atomic_bytes(path, manifest_bytes(manifest))


def read_manifest(path: Path, required: tuple[str, ...] = ("index_sha256", "count", "dim", "encoder_fingerprint")) -> dict[str, Any]:
    """The JSON object at ``path`` with the ``required`` keys; ``IndexCorruptError`` naming the file otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: manifest missing (index was never saved completely)") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexCorruptError(f"{path}: manifest is not valid JSON ({e}); half-written or corrupted") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path}: manifest is not a JSON object")
    for key in required:
        if key not in manifest:
            raise IndexCorruptError(f"{path}: manifest lacks {key!r}")
    return manifest


def file_entry(path: Path) -> dict[str, Any]:
    """A manifest's ``files`` entry: sha256 and size."""
    return {"sha256": sha256_of_file(path), "bytes": path.stat().st_size}


def verify_files(directory: Path | str, manifest: Mapping[str, Any], *, mode: str = "sha256") -> None:
    """Every file listed in the manifest's ``files`` exists with its size (and sha256 when
    ``mode="sha256"``); raises ``IndexCorruptError`` naming the file. ``mode="none"`` checks nothing."""
    if mode == "none":
        return
    if mode not in ("sha256", "size"):
        raise ValueError(f"verify mode must be 'sha256', 'size' or 'none', got {mode!r}")
    directory = Path(directory)
    for name, entry in manifest["files"].items():
        path = directory / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise IndexCorruptError(f"{path}: missing (listed in {directory / MANIFEST_FILE})") from None
        if size != entry["bytes"]:
            raise IndexCorruptError(f"{path}: size {size} B != {entry['bytes']} B in the manifest (truncated or replaced file)")
        if mode == "sha256":
            digest = sha256_of_file(path)
            if digest != entry["sha256"]:
                raise IndexCorruptError(
                    f"{path}: sha256 {digest[:16]}... does not match the manifest's {entry['sha256'][:16]}... "
                    "(corrupted or half-written file); rebuild it"
                )


def read_verified_bytes(path: Path, sha256: str) -> bytes:
    """A (small) file's bytes, their sha256 checked on the bytes read: a concurrent replacement can
    never pair one file's checksum with another file's content."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IndexCorruptError(f"{path}: missing") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise IndexCorruptError(f"{path}: sha256 {digest[:16]}... does not match the manifest's {sha256[:16]}... "
                                "(corrupted or half-written file)")
    return data


# --------------------------------------------------------------------------------------------
# version folders


@contextlib.contextmanager
def new_version(parent: Path, version: str, *, keep_versions: int) -> Iterator[Path]:
    """Write a new version folder ``parent/version``: yields an empty temp folder in ``parent``
    (temp folders a crashed run left are removed first). On a clean exit its files are fsynced, it
    is renamed to ``parent/version`` (dropped if that exists already: names are content-derived, so
    it holds the same content) and all but the newest ``keep_versions`` versions are pruned; the
    temp folder is removed either way. The caller holds ``parent``'s lock."""
    _remove_stale_tmp_dirs(parent)
    tmp = parent / f"{TMP_DIR_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _publish(tmp, parent / version)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune_versions(parent, version, keep_versions)


def _remove_stale_tmp_dirs(parent: Path) -> None:
    if parent.is_dir():
        for p in parent.iterdir():
            if p.is_dir() and p.name.startswith(TMP_DIR_PREFIX):
                shutil.rmtree(p, ignore_errors=True)


def _publish(tmp: Path, final: Path) -> bool:
    """fsync the temp folder's files and rename it to ``final``. False if ``final`` already exists."""
    for p in tmp.iterdir():
        fsync_file(p)
    fsync_dir(tmp)
    try:
        os.rename(tmp, final)
    except OSError:
        if final.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        raise
    fsync_dir(final.parent)
    return True


def _prune_versions(parent: Path, keep_name: str, keep: int) -> list[str]:
    """Keep ``keep_name`` and the newest ``keep - 1`` other version folders; returns removed names.
    A server that has an old version open keeps reading it: unlinked files live while mapped."""
    versions = [p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != keep_name]
    versions.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for p in versions[max(0, keep - 1):]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p.name)
    return removed
