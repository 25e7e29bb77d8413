"""Which flat/IVF index to build for a catalog (``choose_index_spec``; numbers in ``flat.py``'s
docstring) and the ``IndexSpec`` recorded in its manifest."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import faiss


@dataclass(frozen=True)
class IndexSpec:
    """What to build: a FAISS factory string plus the parameters that go with it."""

    factory: str
    kind: Literal["flat", "ivf", "hnsw", "other"]
    dim: int
    metric: str = "inner_product"
    normalize: bool = True
    nlist: int | None = None
    train_size: int = 0  # vectors sampled (seeded) for training; 0 = no training needed
    seed: int = 0
    search_params: dict[str, int] = field(default_factory=dict)  # defaults, e.g. {"nprobe": 32}
    # FAISS threads a scene's batched search runs on (measured at build: ``flat_choice``); 1 before it was
    search_threads: int = 1
    supports_remove: bool = True
    rationale: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IndexSpec:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(x, 1)))))


def pow2_round(x: float) -> int:
    return 1 << max(0, int(round(math.log2(max(x, 1)))))


def choose_index_spec(
    n_vectors: int,
    dim: int,
    *,
    exact_threshold: int = 50_000,
    code: str = "SQ8",
    nlist: int | None = None,
    nprobe: int | None = None,
    min_points_per_list: int = 39,
    train_points_per_list: int = 50,
    seed: int = 0,
) -> IndexSpec:
    """Pick the index for ``n_vectors`` x ``dim`` embeddings.

    ``n_vectors <= exact_threshold`` -> exact ``Flat``. Above: ``IVF{nlist},{code}`` with
    ``nlist`` ~ 4*sqrt(n) (power of two, at least ``min_points_per_list`` training points per
    list), trained on ``min(n, train_points_per_list*nlist)`` seeded samples, default
    ``nprobe = max(16, nlist // 64)``. ``code`` is any FAISS IVF encoding: ``SQ8`` (default,
    d+8 bytes/product), ``SQfp16`` (2d+8), ``PQ{m}x8`` ... Only IVF supports incremental removal.
    """
    if n_vectors < 0 or dim <= 0:
        raise ValueError(f"bad shape n_vectors={n_vectors} dim={dim}")
    if n_vectors <= exact_threshold:
        return IndexSpec(
            factory="Flat",
            kind="flat",
            dim=dim,
            supports_remove=True,
            seed=seed,
            rationale=f"n={n_vectors} <= exact_threshold={exact_threshold}: exact brute-force search",
        )
    if nlist is None:
        nlist = pow2_round(4 * math.sqrt(n_vectors))
        nlist = min(nlist, pow2_floor(n_vectors / min_points_per_list), 65_536)
        nlist = max(nlist, 1)
    if nprobe is None:
        nprobe = max(16, nlist // 64)
    nprobe = min(nprobe, nlist)
    train_size = int(min(n_vectors, max(train_points_per_list, min_points_per_list) * nlist))
    return IndexSpec(
        factory=f"IVF{nlist},{code}",
        kind="ivf",
        dim=dim,
        nlist=nlist,
        train_size=train_size,
        seed=seed,
        search_params={"nprobe": int(nprobe)},
        supports_remove=True,
        rationale=(
            f"n={n_vectors} > exact_threshold={exact_threshold}: IVF with {code} codes "
            f"(~{_code_bytes(dim, code)} B/vector + 8 B id), nlist~4*sqrt(n), nprobe={nprobe}"
        ),
    )


def _code_bytes(dim: int, code: str) -> int | str:
    try:
        from faiss.contrib.factory_tools import get_code_size

        return int(get_code_size(dim, code))
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def _kind_of_factory(factory: str) -> str:
    f = factory.replace(" ", "")
    if f == "Flat":
        return "flat"
    if f.startswith("IVF") and "Refine" not in f and not f.endswith(",RFlat"):
        return "ivf"
    if f.startswith("HNSW"):
        return "hnsw"
    return "other"


def spec_from_factory(factory: str, dim: int, *, train_size: int = 100_000, seed: int = 0,
                      search_params: Mapping[str, int] | None = None) -> IndexSpec:
    """An ``IndexSpec`` for an arbitrary factory string (for experiments and benchmarks)."""
    kind = _kind_of_factory(factory)
    probe = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.try_extract_index_ivf(probe)
    return IndexSpec(
        factory=factory,
        kind=kind,  # type: ignore[arg-type]
        dim=dim,
        nlist=int(ivf.nlist) if ivf is not None else None,
        train_size=0 if probe.is_trained else train_size,
        seed=seed,
        search_params=dict(search_params or {}),
        supports_remove=kind in ("flat", "ivf"),
        rationale="explicit factory string",
    )


