"""Name -> (factory, config dataclass) registries for every pluggable component.

One small generic class serves all component kinds. A recipe selects a component by name
(``objective=cocomix``); the registry hands back the factory and the dataclass that types the
component's options, so the recipe layer can validate options before anything is built.

This module is pure Python on purpose: the method modules (concept sources, mixers, objectives)
register themselves here and must stay importable with torch alone.

Third-party code registers the same way, from its own module::

    from cocomix.registry import OBJECTIVES

    @OBJECTIVES.register("my_loss", MyLossConfig)
    class MyLoss: ...

and a recipe names that module under ``plugins: [my_module]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cocomix.contracts import ConceptSourceContract, MixerContract, ObjectiveContract

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class CocomixError(Exception):
    """An error a user can fix; the message names the problem and the fix.

    The command-line runner prints these as one line (no traceback unless ``--debug``).
    """


def first_line(err: BaseException) -> str:
    """An exception's first message line (its type's name when it has no message): what a
    ``CocomixError`` quotes from a library's error so the user still gets one line."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class UnknownNameError(CocomixError, KeyError):
    """A registry was asked for a name nobody registered."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


class DuplicateNameError(CocomixError):
    """Two components tried to register under the same name."""


@dataclass(frozen=True)
class EmptyConfig:
    """Options of a component that takes none."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component."""

    name: str
    factory: Callable[..., T]
    config_cls: type
    module: str
    defaults: Callable[[], Any] | None = None
    """Builds this entry's default options when they differ per name (e.g. one arch's sizes)."""
    contract: Any = None
    """What the component needs the run to build (``cocomix.contracts``), for the kinds that
    declare one (objectives, concept sources, mixers); ``None`` for the others."""

    def default_config(self) -> Any:
        return self.defaults() if self.defaults is not None else self.config_cls()


class Registry(Generic[T]):
    """Maps names to ``Entry`` (factory + config dataclass) for one kind of component."""

    def __init__(self, kind: str, *, key: str | None = None, contract: type | None = None) -> None:
        self.kind = kind
        # The recipe key that selects this kind (``objective=...``); used in error messages.
        self.key = key or kind
        self.contract_type = contract
        """The contract dataclass this kind declares (a factory without one gets its defaults)."""
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, config_cls: type | None = None, *, defaults: Callable[[], Any] | None = None
    ) -> Callable[[F], F]:
        """Decorator: register a class or function under ``name`` with its options dataclass."""

        def decorate(factory: F) -> F:
            self.add(name, factory, config_cls, defaults=defaults)
            return factory

        return decorate

    def add(
        self,
        name: str,
        factory: Callable[..., T],
        config_cls: type | None = None,
        *,
        defaults: Callable[[], Any] | None = None,
    ) -> None:
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise CocomixError(
                f"cannot register {self.kind} {name!r}: names use letters, digits, '_' and '-'"
            )
        config_cls = config_cls or EmptyConfig
        if not dataclasses.is_dataclass(config_cls):
            raise CocomixError(
                f"cannot register {self.kind} {name!r}: its config {config_cls!r} is not a dataclass"
            )
        module = getattr(factory, "__module__", "?")
        if name in self._entries:
            other = self._entries[name].module
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice (by {other} and by {module}); "
                f"rename one of them"
            )
        contract = self._contract(name, factory)
        self._entries[name] = Entry(name, factory, config_cls, module, defaults, contract)
        if isinstance(factory, type) and hasattr(factory, "registered_name"):
            # Set on the class itself, so a registered subclass does not report its parent's name.
            factory.registered_name = name  # type: ignore[attr-defined]

    def _contract(self, name: str, factory: Callable[..., T]) -> Any:
        if self.contract_type is None:
            return None
        contract = getattr(factory, "contract", None)
        if contract is None:
            return self.contract_type()
        if not isinstance(contract, self.contract_type):
            raise CocomixError(
                f"cannot register {self.kind} {name!r}: its `contract` is a "
                f"{type(contract).__name__}, not a {self.contract_type.__name__} "
                f"(cocomix.contracts); declare `contract = {self.contract_type.__name__}(...)`"
            )
        return contract

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.key} {name!r}; known: {', '.join(self.names())}. "
                f"To add one, register it with @{self.kind.upper()}.register(...) in a module "
                f"listed under `plugins:`"
            ) from None

    def build(self, name: str, config: Any = None, /, *args: Any, **kwargs: Any) -> T:
        """Call the factory of ``name`` with its config (the default one if ``None``)."""
        entry = self.get(name)
        if config is None:
            config = entry.default_config()
        return entry.factory(config, *args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


# One instance per component kind. The key is the top-level recipe key that selects it.
OBJECTIVES: Registry[Any] = Registry("objectives", key="objective", contract=ObjectiveContract)
CONCEPT_SOURCES: Registry[Any] = Registry(
    "concept_sources", key="concepts", contract=ConceptSourceContract
)
MIXERS: Registry[Any] = Registry("mixers", key="mixer", contract=MixerContract)
ARCHS: Registry[Any] = Registry("archs", key="model")
CORPORA: Registry[Any] = Registry("corpora", key="data")
TOKENIZERS: Registry[Any] = Registry("tokenizers", key="tokenizer")

ALL_REGISTRIES: tuple[Registry[Any], ...] = (
    ARCHS,
    CORPORA,
    TOKENIZERS,
    OBJECTIVES,
    MIXERS,
    CONCEPT_SOURCES,
)


def import_plugins(modules: list[str] | tuple[str, ...]) -> None:
    """Import user modules that register components (recipe key ``plugins:``)."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            # Only a missing plugin itself is the user's typo; a missing dependency inside the
            # plugin is reported as it is.
            if err.name is not None and module.startswith(err.name):
                raise CocomixError(
                    f"plugin module {module!r} not found; check `plugins:` in the recipe and that "
                    f"the module is importable (on PYTHONPATH or installed)"
                ) from None
            raise CocomixError(
                f"plugin module {module!r} imports {err.name!r}, which is not installed; install "
                f"it or remove the plugin from `plugins:`"
            ) from err
        except CocomixError:
            raise  # already says which registration is wrong (e.g. a name registered twice)
        except SyntaxError as err:
            raise CocomixError(
                f"plugin module {module!r} has a syntax error at {err.filename}:{err.lineno} "
                f"({err.msg}); fix that line"
            ) from err
        except Exception as err:  # noqa: BLE001 (any failure of user code at import time)
            raise CocomixError(
                f"plugin module {module!r} failed while importing: {type(err).__name__}: {err} "
                f"(at {_innermost_frame(err)}); fix the plugin (--debug shows the traceback)"
            ) from err


def _innermost_frame(err: BaseException) -> str:
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
