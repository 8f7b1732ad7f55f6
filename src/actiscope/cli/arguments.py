"""The argparse layer every verb shares: one-line usage errors that suggest the closest valid option or
choice, choice lists read from the library when first needed, and the arguments several verbs take."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, overload

from actiscope.errors import ActiscopeError

_N = TypeVar("_N")
CLOSE_MARGIN = 0.1  # similarity (0 to 1) by which a suggestion may trail the best one
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # argparse's own test: a value, not an option


class UsageError(ActiscopeError):
    """A combination of options the parser cannot reject by itself (it needs the model or the data)."""


def closest(word: str, candidates: Iterable[str]) -> list[str]:
    """The candidates that look like a typo of `word`, best first; those far behind the best are left
    out, so that the list stays short."""
    close = difflib.get_close_matches(word, list(candidates), n=3, cutoff=0.6)
    scores = {c: difflib.SequenceMatcher(None, word, c).ratio() for c in close}
    return [c for c in close if scores[c] >= scores[close[0]] - CLOSE_MARGIN]


def closest_options(option: str, options: Iterable[str]) -> list[str]:
    """An option with a word too many (`--lr-rate`) means the option it starts with (`--lr`); otherwise
    the options that look like a typo of it."""
    options = list(options)
    extended = [o for o in options if o.startswith("--") and option.startswith(o + "-")]
    return [max(extended, key=len)] if extended else closest(option, options)


def did_you_mean(suggestions: Sequence[str]) -> str:
    """'; did you mean a or b?', or '' without suggestions."""
    if not suggestions:
        return ""
    listed = (
        suggestions[0] if len(suggestions) == 1 else ", ".join(suggestions[:-1]) + " or " + suggestions[-1]
    )
    return f"; did you mean {listed}?"


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, where it has one and the help does not say it already
    (the training options write theirs, with what each recipe sets). argparse's own
    ArgumentDefaultsHelpFormatter would also print "(default: None)" for every option left to a recipe."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default in (None, False, argparse.SUPPRESS)
            or "default" in text
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)".strip()


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (exit status 2), naming the closest valid options
    or choices for a typo (Python 3.11's argparse has no `suggest_on_error`), and shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_known_args(  # type: ignore[override]  # one signature for typeshed's three overloads
        self, args: Iterable[str] | None = None, namespace: _N | None = None
    ) -> tuple[_N | argparse.Namespace, list[str]]:
        """Reject an unknown option here, where its close matches are known: argparse hands a subcommand's
        unknown options up to the top-level parser, which knows only its own options."""
        parsed, extras = super().parse_known_args(args, namespace)
        unknown = [arg for arg in extras if self._looks_like_option(arg)]
        if unknown:
            option = unknown[0].split("=", 1)[0]
            known = [flag for action in self._actions for flag in action.option_strings]
            self.error(f"unknown option {option}{did_you_mean(closest_options(option, known))}")
        return parsed, extras

    def _looks_like_option(self, arg: str) -> bool:
        return (
            len(arg) > 1
            and arg[0] in self.prefix_chars
            and " " not in arg
            and not _NEGATIVE_NUMBER.match(arg)
        )

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """The library's wording for a bad choice ("--optimizer 'lion' is not one of: ..."), plus the
        closest choices."""
        if action.choices is None or value in action.choices:
            return
        choices = [str(choice) for choice in action.choices]
        name = action.option_strings[-1] if action.option_strings else action.dest.replace("_", " ")
        raise argparse.ArgumentError(
            None,
            f"{name} {value!r} is not one of: {', '.join(choices)}{did_you_mean(closest(str(value), choices))}",
        )


class LibraryChoices(Sequence[str]):
    """A choice list the library owns, imported when argparse first looks at it (to check a value or to
    show help): the modules that hold some of these lists import torch, and `actiscope --help` or an
    ONNX prediction should not wait seconds for it."""

    def __init__(self, load: Callable[[], Sequence[str]]) -> None:
        self._load = load
        self._choices: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())


def add_library_choice(
    parser: argparse.ArgumentParser, *flags: str, choices: LibraryChoices, **kwargs: Any
) -> argparse.Action:
    """An option whose choices come from the library. They are attached after `add_argument`, which
    would format (and so import) them at once."""
    action = parser.add_argument(*flags, **kwargs)
    action.choices = choices
    return action


def _dataset_formats() -> Sequence[str]:
    from actiscope.data.formats import READERS

    return sorted(READERS)


def add_dataset_args(parser: argparse.ArgumentParser) -> None:
    """DATA and how to read it, for the verbs that read a dataset."""
    parser.add_argument("data", type=Path, metavar="DATA", help="dataset folder or CSV file")
    add_dataset_format(parser, help="dataset layout (default: detected)")
    parser.add_argument("--images", type=Path, help="image folder of a CSV dataset, when not beside the CSV")


def add_dataset_format(parser: argparse.ArgumentParser, *, help: str) -> None:
    add_library_choice(parser, "--format", choices=LibraryChoices(_dataset_formats), help=help)


def _backends() -> Sequence[str]:
    from actiscope.predict import BACKENDS

    return BACKENDS


def add_backend_arg(parser: argparse.ArgumentParser) -> None:
    """How a model package runs: the backend."""
    add_library_choice(
        parser,
        "--backend",
        choices=LibraryChoices(_backends),
        default="auto",
        help="auto: int8 ONNX if its accuracy check passed at export, else ONNX, else PyTorch",
    )


def add_inference_args(parser: argparse.ArgumentParser) -> None:
    """How a model package runs, for the verbs that predict."""
    add_backend_arg(parser)
    parser.add_argument("--batch-size", type=int, default=32, help="images (or clips) per inference batch")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes running beside inference")


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL", help="model package or run directory")
