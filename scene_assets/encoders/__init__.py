"""Image/text encoders behind one open_clip-shaped interface.

Kinds (pick with :class:`EncoderSpec` + :func:`build_encoder`; one module each, with its options):

* ``"default"`` (:mod:`.default`) – fully offline EfficientNet-Lite0 + all-MiniLM-L6-v2 dual encoder,
  joint dim 384, with a trainable projection head: a :class:`FeatureMapEncoder`.
* ``"open_clip"`` (:mod:`.openclip`) – any open_clip architecture by name + ``pretrained`` tag
  (downloads where there is internet) or a local checkpoint file.
* ``"sentence_transformers"`` (:mod:`.sentence_transformer`) – text-only sentence-transformers model
  (default: packaged MiniLM).
* ``"fake"`` (:mod:`.fake`) – deterministic hash-seeded vectors for fast tests.

:mod:`.base` holds the interfaces (and loads weights lazily, once, for every kind), :mod:`.registry`
the spec and the factory.  Nothing heavy happens at import time: torch / open_clip / transformers
are imported and weights loaded on first use.  No Dagster imports.

Typical DataLoader use (decode + preprocess in workers, model in the main process)::

    enc = build_encoder(EncoderSpec())
    tf = enc.image_transform                       # picklable torchvision transform
    ds = [tf(Image.open(p)) for p in paths]        # ... or a Dataset doing this in workers
    for batch in DataLoader(ds, batch_size=16, num_workers=2):
        emb = enc.encode_image_tensors(batch)      # N x dim, float32, L2-normalised
"""

from .base import Encoder, FeatureMapEncoder
from .default import (
    DEFAULT_EMBED_DIM,
    DEFAULT_PREPROCESSING,
    DEFAULT_TRUNK_DIM,
    DefaultEncoder,
    DefaultOptions,
    default_model_config,
    default_text_model_dir,
    default_trunk_weights_path,
    remap_lite0_state_dict,
)
from .errors import EncoderLoadError, TextOnlyEncoderError
from .fake import FakeEncoder, FakeOptions
from .fingerprints import library_versions
from .openclip import OpenClipEncoder, OpenClipOptions
from .registry import ENCODER_KINDS, EncoderSpec, build_encoder, encoder_class, option_names
from .sentence_transformer import SentenceTransformerEncoder, SentenceTransformerOptions

__all__ = [
    "DEFAULT_EMBED_DIM",
    "DEFAULT_PREPROCESSING",
    "DEFAULT_TRUNK_DIM",
    "ENCODER_KINDS",
    "DefaultEncoder",
    "DefaultOptions",
    "Encoder",
    "EncoderLoadError",
    "EncoderSpec",
    "FakeEncoder",
    "FakeOptions",
    "FeatureMapEncoder",
    "OpenClipEncoder",
    "OpenClipOptions",
    "SentenceTransformerEncoder",
    "SentenceTransformerOptions",
    "TextOnlyEncoderError",
    "build_encoder",
    "default_model_config",
    "default_text_model_dir",
    "default_trunk_weights_path",
    "encoder_class",
    "library_versions",
    "option_names",
    "remap_lite0_state_dict",
]
