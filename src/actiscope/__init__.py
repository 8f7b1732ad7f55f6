"""actiscope: recognise human actions in still images and short video clips.

The Python API (actiscope.api) is re-exported here, and imported when first used, so that
`import actiscope` (and the command line's parser) stays light: no torch. `evaluate`, `predict` and
`export` are the names of subpackages (an import of `actiscope.evaluate.report` sets the attribute
`actiscope.evaluate` to its package), so those three verbs are `actiscope.api.evaluate` and so on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actiscope.version import __version__

if TYPE_CHECKING:
    from actiscope import api
    from actiscope.api import (
        Comparison,
        Evaluation,
        Inspection,
        Predictions,
        Predictor,
        Run,
        compare,
        inspect,
        train,
        train_options,
    )

__all__ = [
    "Comparison",
    "Evaluation",
    "Inspection",
    "Predictions",
    "Predictor",
    "Run",
    "__version__",
    "api",
    "compare",
    "inspect",
    "train",
    "train_options",
]
LAZY = frozenset(__all__) - {"__version__"}  # found in actiscope.api when first asked for


def __getattr__(name: str) -> Any:
    """actiscope.api, or one of its names, imported on first use (PEP 562)."""
    if name not in LAZY:
        raise AttributeError(f"module 'actiscope' has no attribute {name!r}")
    import actiscope.api

    return actiscope.api if name == "api" else getattr(actiscope.api, name)


def __dir__() -> list[str]:
    return sorted({*globals(), *LAZY})
