"""Codec registry: one module per encoding, registered here by name and header id.

Adding a codec: write a module with a :class:`~lsc_ort.codecs.base.Codec` subclass and add one
line to ``_BUILTIN`` below; the conformance suite (``tests/test_codecs_conformance.py``) covers
it from then on.
"""

from __future__ import annotations

from lsc_ort.codecs.base import Codec, Encoded, WeightTensor
from lsc_ort.codecs.bitmap import BitmapCodec
from lsc_ort.codecs.bsr import BsrCodec
from lsc_ort.codecs.csr import CsrCodec
from lsc_ort.codecs.dense import DenseCodec
from lsc_ort.codecs.f2f import F2fCodec
from lsc_ort.codecs.lsc import LscCodec
from lsc_ort.codecs.mswu import MswuCodec
from lsc_ort.codecs.relidx import RelidxCodec
from lsc_ort.format import BlobFormatError

_BY_NAME: dict[str, Codec] = {}
_BY_ID: dict[int, Codec] = {}


def register(codec: Codec) -> Codec:
    """Register a codec instance under its ``name`` and ``codec_id`` (both must be new)."""
    if codec.name in _BY_NAME or codec.codec_id in _BY_ID:
        raise ValueError(f"codec {codec.name!r} (id {codec.codec_id}) is already registered")
    _BY_NAME[codec.name] = codec
    _BY_ID[codec.codec_id] = codec
    return codec


def get_codec(name: str) -> Codec:
    """The codec registered as ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; available: {', '.join(available_codecs())}") from None


def codec_for_id(codec_id: int) -> Codec:
    """The codec with header id ``codec_id`` (raises :class:`BlobFormatError` if unknown)."""
    try:
        return _BY_ID[codec_id]
    except KeyError:
        raise BlobFormatError(f"unknown codec id {codec_id}") from None


def available_codecs() -> list[str]:
    """Names of the registered codecs, in id order."""
    return [codec.name for _, codec in sorted(_BY_ID.items())]


_BUILTIN = (DenseCodec(), CsrCodec(), RelidxCodec(), BitmapCodec(), BsrCodec(), LscCodec(), F2fCodec(),
            MswuCodec())
for _codec in _BUILTIN:
    register(_codec)

__all__ = ["Codec", "Encoded", "WeightTensor", "available_codecs", "codec_for_id", "get_codec",
           "register"]
