"""Which encoder kinds exist, the spec that names one with its options, and the factory.

An :class:`EncoderSpec` is a kind plus that kind's frozen options dataclass plus the settings every
kind shares (device, precision, batch sizes): hashable, so it can key a cache of loaded encoders.
Its flat form (``to_dict`` / ``from_dict``: the shared settings and the kind's option fields side
by side) is what configs, the Dagster resource and ``bundle.json`` hold.

Adding a kind: one module with an options dataclass and an :class:`~.base.Encoder` subclass that
names both (``kind``, ``options_type``, ``from_options``), and one entry in ``_KINDS`` below."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Mapping

from .base import Encoder
from .default import DefaultEncoder
from .fake import FakeEncoder
from .openclip import OpenClipEncoder
from .sentence_transformer import SentenceTransformerEncoder

_KINDS: dict[str, type[Encoder]] = {cls.kind: cls for cls in (
    DefaultEncoder, OpenClipEncoder, SentenceTransformerEncoder, FakeEncoder)}
ENCODER_KINDS: tuple[str, ...] = tuple(_KINDS)
SHARED_SETTINGS: tuple[str, ...] = ("device", "precision", "batch_size", "text_batch_size")


def encoder_class(kind: str) -> type[Encoder]:
    """The class of ``kind``; an unknown kind raises a ValueError that lists the valid ones."""
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown encoder kind {kind!r}; valid kinds: {', '.join(ENCODER_KINDS)}") from None


def option_names(kind: str) -> tuple[str, ...]:
    """The option fields of ``kind``."""
    return tuple(f.name for f in fields(encoder_class(kind).options_type))


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to (lazily) build an encoder; hashable, config-friendly.

    ``options``: an instance of the kind's options class (``DefaultOptions``, ``OpenClipOptions``,
    ``SentenceTransformerOptions``, ``FakeOptions``); None means that kind's defaults.  Shared:
    ``device`` ("auto" = CUDA when available, else CPU), ``precision`` ("auto" = fp16 autocast on
    CUDA, fp32 on CPU), ``batch_size`` (images), ``text_batch_size`` (defaults to batch_size)."""

    kind: str = "default"
    options: Any = None
    device: str = "auto"
    precision: Literal["auto", "fp32", "fp16"] = "auto"
    batch_size: int = 32
    text_batch_size: int | None = None

    def __post_init__(self) -> None:
        options_type = encoder_class(self.kind).options_type
        if self.options is None:
            object.__setattr__(self, "options", options_type())
        elif not isinstance(self.options, options_type):
            raise TypeError(f"kind {self.kind!r} takes {options_type.__name__}, got {type(self.options).__name__}")
        if self.batch_size < 1 or (self.text_batch_size is not None and self.text_batch_size < 1):
            raise ValueError("batch sizes must be >= 1")
        if self.precision not in ("auto", "fp32", "fp16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'fp16', got {self.precision!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EncoderSpec":
        """The spec of a flat mapping: ``kind``, shared settings and the kind's option fields.

        Option fields of the other kinds are ignored (a flat config carries every kind's fields, so
        switching ``kind`` is one edit); a name that no kind knows is an error."""
        kind = values.get("kind", "default")
        own = option_names(kind)
        known = {"kind", *SHARED_SETTINGS, *(name for other in ENCODER_KINDS for name in option_names(other))}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown encoder setting(s) {unknown}; kind {kind!r} takes {list(SHARED_SETTINGS + own)}")
        options = encoder_class(kind).options_type(**{k: v for k, v in values.items() if k in own})
        return cls(kind=kind, options=options, **{k: values[k] for k in SHARED_SETTINGS if k in values})

    def settings(self) -> dict[str, Any]:
        """The shared settings, as keyword arguments of every kind's constructor."""
        return {name: getattr(self, name) for name in SHARED_SETTINGS}

    def to_dict(self) -> dict[str, Any]:
        """Flat form (see :meth:`from_dict`): kind, shared settings, the kind's options."""
        return {"kind": self.kind, **self.settings(), **asdict(self.options)}

    def replace(self, **values: Any) -> "EncoderSpec":
        """This spec with some flat fields replaced (a new ``kind`` keeps only the settings it shares)."""
        return EncoderSpec.from_dict({**self.to_dict(), **values})


def build_encoder(spec: EncoderSpec | None = None, **values: Any) -> Encoder:
    """Build (but do not load) the encoder described by ``spec`` (default: the offline default
    encoder).  Keyword values are flat fields (see :meth:`EncoderSpec.from_dict`) that replace the
    spec's, e.g. ``build_encoder(kind="fake", dim=8)``."""
    if spec is None:
        spec = EncoderSpec.from_dict(values)
    elif values:
        spec = spec.replace(**values)
    return encoder_class(spec.kind).from_options(spec.options, **spec.settings())
