"""Named parts chosen by a config key: a registry maps each name to its class (the methods, the
forget designs), refuses a second class under a taken name, and names the choices when a config
asks for one that does not exist."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from unlearnbench.errors import ConfigError

C = TypeVar("C", bound=type)


class Registry(dict[str, type]):
    """``name -> class``; ``what`` says what is registered, ``key`` the config key that chooses."""

    def __init__(self, what: str, key: str, sort_choices: bool = False) -> None:
        super().__init__()
        self.what, self.key, self.sort_choices = what, key, sort_choices

    def register(self, name: str) -> Callable[[C], C]:
        """A class decorator: ``cls.name = name``, listed under ``name``."""

        def wrap(cls: C) -> C:
            if name in self:
                raise RuntimeError(f"{self.what} '{name}' registered twice: {self[name]} and {cls}")
            cls.name = name
            self[name] = cls
            return cls

        return wrap

    def choices(self) -> list[str]:
        return sorted(self) if self.sort_choices else list(self)

    def lookup(self, name: Any) -> type:
        if name not in self:
            raise ConfigError(self.key, name, f"one of {', '.join(self.choices())}")
        return self[name]
