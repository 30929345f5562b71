"""Errors that carry a message meant for the user, not a traceback."""


class UnlearnbenchError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))  # one line, whatever a wrapped error said


class ConfigError(UnlearnbenchError):
    """A config key holds a value that cannot work; the message names the key and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


class DataError(UnlearnbenchError):
    """The data itself (a file, a column, a record) cannot be used."""


class DivergenceError(UnlearnbenchError):
    """A fit's loss became NaN or infinite: the fit stops at that step (its message names the
    method, the fit and the step)."""
