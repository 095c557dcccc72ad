"""The project's exception types.

Everything a caller can do wrong with an input raises an :class:`InputError` (or a subclass):
the TorchServe handler and the CLI map these to a 4xx answer / exit code 2 with the message.
Anything else is a bug or an infrastructure failure and surfaces as a 5xx.
"""


class ArcscanError(Exception):
    """Base class of all arcscan errors."""


class InputError(ArcscanError):
    """An input (frame file, array, label CSV, request body) is malformed or out of bounds."""

    status = 400


class InputTooLarge(InputError):
    """An input exceeds a size limit (body, decompressed bytes, frame count, dimensions)."""

    status = 413


class UnsupportedFormat(InputError):
    """An input is well-formed but not a format or depth arcscan accepts."""

    status = 415


class RegistryError(ArcscanError):
    """A model-registry operation cannot be done (missing alias, incomplete version, ...)."""
