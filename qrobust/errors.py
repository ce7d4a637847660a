"""The exceptions qrobust raises for bad input, each naming what is wrong."""


class QrobustError(ValueError):
    """Base class: a problem with the user's input, detected before any work starts."""


class DataError(QrobustError):
    """A dataset file is missing or malformed, or a sample cannot be encoded."""


class ConfigError(QrobustError):
    """A setting is out of range, unknown, or inconsistent with the data."""


class ResultsMismatchError(QrobustError):
    """An output directory holds results made by a different configuration."""


class DamagedRunError(ConfigError):
    """A run directory's table or configuration does not parse: the run is damaged (not merely unfinished)."""
