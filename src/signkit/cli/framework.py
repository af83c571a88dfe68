"""How signkit builds its commands on Typer.

Commands are typed functions whose parameters are ``Annotated`` Typer
options. Options that several commands share are declared once, as the
fields of a frozen dataclass (an *option group*, see ``options.py``); a
command takes the whole group as one parameter and ``@grouped`` spreads its
fields into the command's signature for Typer, then hands the function one
built group.

Typer is used for what it declares (options, arguments, help, completion)
with three choices of signkit's:

- Plain help, as click prints it: Typer's rich panels cost start-up time
  that the budgets of ``signkit --help`` cannot afford.
- Values are converted here (``convert``), not by Typer's pydantic-based
  conversion: importing pydantic and building one validator per option
  costs a signing run more start-up time than the rest of the CLI, and
  its messages cannot be translated. The conversions needed are few
  (text, numbers with bounds, choices, paths, flags, repeatable options)
  and their messages go through the catalogue like every other message.
- Texts people read (help, usage errors) pass through the catalogue when
  shown, so that a translated entry reaches them.

``Command`` and ``Group`` give every parameter Typer made the conversion of
this module (see ``_adopt``); the version of Typer is pinned to the minor
release these classes were written for, and ``tests/unit/test_cli_framework.py``
fails when Typer's parameter classes change under them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import inspect
import os
import stat
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from signkit.i18n import t

R = TypeVar("R")

# ------------------------------------------------------------------ conversion


def _bad(ctx: Any, param: Any, message: str) -> typer.BadParameter:
    return typer.BadParameter(message, ctx=ctx, param=param)


def _bounds(info: Any) -> str:
    low, high = info.min, info.max
    if low is not None and high is not None:
        return f"{low}<=x<={high}"
    return f"x>={low}" if low is not None else f"x<={high}"


def _number(kind: type[int] | type[float], value: Any, info: Any, ctx: Any, param: Any) -> Any:
    if isinstance(value, bool):
        value = str(value)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        name = t("integer") if kind is int else t("number")
        message = t("{value!r} is not a valid {kind}.").format(value=value, kind=name)
        raise _bad(ctx, param, message) from None
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        message = t("{value} is not in the range {range}.")
        raise _bad(ctx, param, message.format(value=number, range=_bounds(info)))
    return number


def _path(value: Any, info: Any, ctx: Any, param: Any) -> Path:
    path = Path(os.fsdecode(value))
    if not info.exists and (info.file_okay and info.dir_okay):
        return path
    try:
        mode = os.stat(path).st_mode
    except OSError:
        if info.exists:
            raise _bad(ctx, param, t("{path} does not exist.").format(path=path)) from None
        return path
    if not info.dir_okay and stat.S_ISDIR(mode):
        raise _bad(ctx, param, t("{path} is a directory.").format(path=path))
    if not info.file_okay and stat.S_ISREG(mode):
        raise _bad(ctx, param, t("{path} is a file.").format(path=path))
    return path


_TRUE = ("1", "true", "yes", "on", "y")
_FALSE = ("0", "false", "no", "off", "n", "")


def convert_one(annotation: Any, info: Any, value: Any, ctx: Any = None, param: Any = None) -> Any:
    """One value (from the command line, the environment or a profile) as the
    parameter's annotation asks."""
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise _bad(ctx, param, t("{value!r} is not a valid boolean.").format(value=value))
    if annotation is int or annotation is float:
        return _number(annotation, value, info, ctx, param)
    if get_origin(annotation) is Literal:
        choices = get_args(annotation)
        if value in choices:
            return value
        names = ", ".join(repr(c) for c in choices)
        message = t("{value!r} is not one of {choices}.").format(value=value, choices=names)
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        if close:
            message += " " + t("Did you mean {names}?").format(names=repr(close[0]))
        raise _bad(ctx, param, message)
    if annotation is Path:
        return _path(value, info, ctx, param)
    if annotation is str:
        return value if isinstance(value, str) else str(value)
    raise TypeError(annotation)  # a parameter type this module does not know: a bug


def convert(param: Any, ctx: Any, value: Any) -> Any:
    """The value of a Typer parameter, converted (a tuple for repeatable ones)."""
    descriptor = param.type_descriptor
    annotation, info = descriptor.annotation, descriptor.parameter_info
    repeatable = bool(param.multiple) or param.nargs == -1
    if not repeatable:
        return None if value is None else convert_one(annotation, info, value, ctx, param)
    if value is None:
        return ()
    item = get_args(annotation)[0] if get_origin(annotation) is list else annotation
    # A profile may give one value for a repeatable option (trust = "vn-gov").
    values = [value] if isinstance(value, str | bytes | Path) else list(value)
    return tuple(convert_one(item, info, v, ctx, param) for v in values)


_NAMES = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}


def _display_type(param: Any) -> str:
    """click's names for value types (TEXT, INTEGER, FILE, [a|b]) in help."""
    descriptor = param.type_descriptor
    annotation, info = descriptor.annotation, descriptor.parameter_info
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return "[" + "|".join(str(c) for c in get_args(annotation)) + "]"
    if annotation is Path:
        if info.file_okay and not info.dir_okay:
            return "FILE"
        return "DIRECTORY" if info.dir_okay and not info.file_okay else "PATH"
    name = _NAMES.get(annotation, "TEXT")
    if info.min is not None or info.max is not None:
        name += " " + "RANGE"
    return name


@contextlib.contextmanager
def _translated(obj: Any, *names: str) -> Iterator[None]:
    """The texts ``names`` of ``obj`` through the catalogue while it is shown."""
    saved = {name: getattr(obj, name) for name in names}
    for name, text in saved.items():
        if text:
            setattr(obj, name, t(text))
    try:
        yield
    finally:
        for name, text in saved.items():
            setattr(obj, name, text)


def _process_value(param: Any, ctx: Any, value: Any) -> Any:
    value = convert(param, ctx, value)
    if param.required and param.value_is_missing(value):
        kind = t("argument") if param.param_type_name == "argument" else t("option")
        ctx.fail(t("Missing {kind} {name}.").format(kind=kind, name=param.get_error_hint()))
    if param.callback is not None:
        value = param.callback(ctx, param, value)
    return value


def _display_type_rich(param: Any) -> str:
    if param.metavar is not None:
        return str(param.metavar)
    shown = _display_type(param)
    return f"{shown}..." if param.nargs != 1 else shown


# The subclasses must keep Typer's class as their first base: the parameters
# Typer built have their class switched to them (see _adopt), which Python
# allows only between classes of the same layout.


class Option(TyperOption):
    """A Typer option converted by signkit (methods only, no state)."""

    __slots__ = ()

    def process_value(self, ctx: Any, value: Any) -> Any:
        return _process_value(self, ctx, value)

    def display_type_rich(self, ctx: Any) -> str | None:
        return _display_type_rich(self)

    def get_help_record(self, ctx: Any) -> tuple[str, str] | None:
        with _translated(self, "help"):
            return super().get_help_record(ctx)


class Argument(TyperArgument):
    """A Typer argument converted by signkit (methods only, no state)."""

    __slots__ = ()

    def process_value(self, ctx: Any, value: Any) -> Any:
        return _process_value(self, ctx, value)

    def display_type_rich(self, ctx: Any) -> str | None:
        # The name column shows the metavar already: add only the choices.
        shown = _display_type(self)
        return shown if shown.startswith("[") else None

    def get_help_record(self, ctx: Any) -> tuple[str, str] | None:
        if not self.help and self.display_type_rich(ctx) is None:
            return None  # the usage line says it all
        with _translated(self, "help"):
            return super().get_help_record(ctx)


def _adopt(params: Iterable[Any]) -> None:
    """Give the parameters Typer built signkit's conversion. Typer constructs
    them itself (there is no class to choose), so their class is switched;
    both subclasses add methods only, no state."""
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = Option
        elif type(param) is TyperArgument:
            param.__class__ = Argument
        elif not isinstance(param, Option | Argument):
            raise TypeError(type(param))  # a parameter class this module does not know


class _Translated:
    """Help texts of commands and groups through the catalogue when shown."""

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        command: Any = self
        # click's own metavars; an argument's metavar (INPUT, NAME) is a name
        pieces = [
            t(p) if p in ("[OPTIONS]", "COMMAND [ARGS]...") else p
            for p in command.collect_usage_pieces(ctx)
        ]
        formatter.write_usage(ctx.command_path, " ".join(pieces), t("Usage:") + " ")

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _adopt([option])  # made on first use: its help through the catalogue too
        return option

    def format_help_text(self, ctx: Any, formatter: Any) -> None:
        with _translated(self, "help"):
            super().format_help_text(ctx, formatter)  # type: ignore[misc]

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        with _translated(self, "epilog"):
            super().format_epilog(ctx, formatter)  # type: ignore[misc]

    def get_short_help_str(self, limit: int = 45) -> str:
        with _translated(self, "help", "short_help"):
            text: str = super().get_short_help_str(limit)  # type: ignore[misc]
        return text


class Command(_Translated, TyperCommand):
    """A leaf command: plain help, signkit's conversion."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["rich_markup_mode"] = None
        super().__init__(*args, **kwargs)
        _adopt(self.params)


class Group(_Translated, TyperGroup):
    """A command group: plain help, signkit's conversion, and "did you mean"
    for a mistyped subcommand (through the catalogue)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["rich_markup_mode"] = None
        kwargs["suggest_commands"] = False  # ours below: its message can be translated
        super().__init__(*args, **kwargs)
        _adopt(self.params)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            # What click does (help on stderr, exit 2), without its exception
            typer.echo(ctx.get_help(), err=True)
            raise typer.Exit(2)
        rest: list[str] = super().parse_args(ctx, args)
        return rest

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name = args[0] if args else ""
        if (
            name
            and not name.startswith("-")
            and not ctx.resilient_parsing
            and self.get_command(ctx, name) is None
        ):
            message = t("No such command {name!r}.").format(name=name)
            close = difflib.get_close_matches(name, self.list_commands(ctx))
            if close:
                names = ", ".join(repr(c) for c in close)
                message += " " + t("Did you mean {names}?").format(names=names)
            ctx.fail(message)
        resolved: tuple[str | None, Any, list[str]] = super().resolve_command(ctx, args)
        return resolved


def new_app(name: str, help: str, **settings: Any) -> typer.Typer:
    """A Typer application (a command group, or one command) built with
    signkit's classes."""
    settings.setdefault("cls", Group)
    return typer.Typer(
        name=name,
        help=help,
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        **settings,
    )


def command(app: typer.Typer, name: str, **settings: Any) -> Callable[[Callable[..., R]], Any]:
    """``@app.command(name)`` with signkit's command class."""
    return app.command(name, cls=Command, **settings)


# ------------------------------------------------------------------ option groups


def is_group(annotation: Any) -> bool:
    """An option group: a dataclass whose fields are Typer options."""
    return isinstance(annotation, type) and dataclasses.is_dataclass(annotation)


def group_parameters(group: type[Any]) -> list[inspect.Parameter]:
    """The group's fields as keyword parameters, as Typer reads a signature;
    a field that is itself a group is spread in its place."""
    hints = typing.get_type_hints(group, include_extras=True)
    params = []
    for f in dataclasses.fields(group):
        if is_group(hints[f.name]):
            params += group_parameters(hints[f.name])
            continue
        default = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name], default=default
            )
        )
    return params


def build_group(group: type[R], values: dict[str, Any]) -> R:
    """The group (and the groups among its fields) from the parsed values,
    which are taken out of ``values``."""
    hints = typing.get_type_hints(group, include_extras=True)
    fields = {
        f.name: build_group(hints[f.name], values)
        if is_group(hints[f.name])
        else values.pop(f.name)
        for f in dataclasses.fields(group)  # type: ignore[arg-type]
    }
    return group(**fields)


def grouped(func: Callable[..., R]) -> Callable[..., R]:
    """Spread the option groups among ``func``'s parameters into their fields
    (what Typer sees), and build each group back for the call."""
    signature = inspect.signature(func, eval_str=True)
    groups: dict[str, type[Any]] = {}
    params: list[inspect.Parameter] = []
    seen: set[str] = set()
    for param in signature.parameters.values():
        spread = group_parameters(param.annotation) if is_group(param.annotation) else [param]
        if is_group(param.annotation):
            groups[param.name] = param.annotation
        for p in spread:
            if p.name in seen:
                raise TypeError(p.name)  # two groups declare the same option
            seen.add(p.name)
            params.append(p)
    # Typer wants positional (arguments) before keyword-only parameters.
    params.sort(key=lambda p: p.kind)

    @functools.wraps(func)
    def wrapper(**values: Any) -> R:
        for name, group in groups.items():
            values[name] = build_group(group, values)
        return func(**values)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def option_names(params: Sequence[Any]) -> dict[str, str]:
    """Long option name (``token_label`` for ``--token-label``) -> parameter name,
    for every option; the parameter names map to themselves."""
    names: dict[str, str] = {}
    for param in params:
        if getattr(param, "param_type_name", "") != "option" or param.name is None:
            continue
        names[param.name] = param.name
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("--"):
                names.setdefault(opt[2:].replace("-", "_"), param.name)
    return names
