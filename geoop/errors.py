"""Typed errors. Every message says what is wrong, where (file, field), and what to do."""
from __future__ import annotations

from pathlib import Path


class GeoopError(ValueError):
    """Base class of every error geoop raises on bad input."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.path = None if path is None else str(path)
        self.fix = fix
        text = message if path is None else f"{path}: {message}"
        if fix:
            text = f"{text}\n  fix: {fix}"
        super().__init__(text)


class MissingFileError(GeoopError):
    """The path does not exist or is not a file."""


class UnsupportedFormatError(GeoopError):
    """The file extension is not one geoop reads or writes."""


class CorruptFileError(GeoopError):
    """The file exists but cannot be parsed (truncated, wrong content, bad encoding)."""


class GeometryError(GeoopError):
    """Points or cells are unusable: empty, NaN/inf coordinates, indices out of range."""


class FieldError(GeoopError):
    """A point or cell field is missing or its length does not match the points/cells."""


class NotWatertightError(GeoopError):
    """An inside/outside question was asked of a surface that does not enclose a volume."""


class NotFittedError(GeoopError):
    """A transform or a data-dependent model used before `fit`."""
