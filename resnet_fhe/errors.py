"""Typed errors. Every error a user can cause derives from ResnetFheError, so the CLI can print the
message alone (no traceback) and scripts can catch one base class."""


class ResnetFheError(Exception):
    """Base class of every error raised on bad input or an impossible request."""


class DataError(ResnetFheError):
    """A data set is missing, unreadable or malformed."""


class WeightsError(ResnetFheError):
    """A weights file is missing, unreadable, or lacks or misshapes an array."""


class InputError(ResnetFheError):
    """An image or array handed to the engine has the wrong shape, dtype or range."""


class ModelError(ResnetFheError):
    """A network graph is malformed or uses something the engine does not support."""


class CalibrationError(ResnetFheError):
    """Calibration was asked for on data it must not see, or produced unusable ranges."""


class CompileError(ResnetFheError):
    """The compiler cannot produce a valid plan for this network under these parameters."""


class PlanError(ResnetFheError):
    """A plan file is malformed, inconsistent, or does not match its constants."""


class DecryptionError(ResnetFheError):
    """OpenFHE refused to decode a result: its CKKS error grew past what decoding accepts."""


class ServerError(ResnetFheError):
    """The server process stopped without answering; its own message says why."""
