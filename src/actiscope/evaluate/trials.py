"""What a hyperparameter search writes besides its runs: the leaderboard of trials (csv, markdown) and the
plots (optimisation history, parameter importance), read from the Optuna study. The search itself (the
trials, the study, best.yaml and best/) is the workflow layer's: actiscope.tune.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import optuna
from optuna.trial import FrozenTrial, TrialState

from actiscope.files import atomic_output, atomic_write_text
from actiscope.run import TuneDir

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def cell(value: Any) -> str:
    """A parameter's value as the leaderboard and the log show it."""
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def plot_search(study: optuna.Study, directory: TuneDir) -> None:
    """history.png (every trial's validation accuracy and the best so far) and, once enough trials are done
    to tell, importance.png (how much each searched option mattered: Optuna's PED-ANOVA)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    plots: list[tuple[Callable[..., Axes], Path]] = [
        (optuna_plots.plot_optimization_history, directory.history_plot)
    ]
    if _importances_known(study):
        plots.append((optuna_plots.plot_param_importances, directory.importance_plot))
    else:
        directory.importance_plot.unlink(missing_ok=True)
    # Optuna's matplotlib plots are marked experimental, and set a style sheet: both kept to this function.
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for draw, path in plots:
            figure = cast("Figure", draw(study, target_name="validation accuracy").figure)  # a whole figure
            figure.tight_layout()
            with atomic_output(path) as tmp:
                figure.savefig(tmp, dpi=100, format="png")
            plt.close(figure)


def _importances_known(study: optuna.Study) -> bool:
    """Whether Optuna can tell the options' importance apart: it warns (and gives them all the same) while
    too few trials are done to compare the best of them with the rest."""
    if not any(t.params for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))):
        return False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optuna.importance.get_param_importances(study)
    return not caught


COLUMNS = ("rank", "trial", "state", "val_acc", "epochs", "minutes")


def _score(trial: FrozenTrial) -> float | None:
    if trial.state == TrialState.COMPLETE:
        return trial.value
    return max(trial.intermediate_values.values(), default=None)


def _state(trial: FrozenTrial) -> str:
    if trial.state == TrialState.COMPLETE:
        return "done"
    if trial.state == TrialState.PRUNED:
        return f"pruned after epoch {len(trial.intermediate_values)}"
    if trial.state == TrialState.FAIL:
        return f"failed: {trial.user_attrs['error']}" if "error" in trial.user_attrs else "interrupted"
    return trial.state.name.lower()


def leaderboard_rows(directory: TuneDir, study: optuna.Study, order: Sequence[str]) -> list[dict[str, Any]]:
    """One row per trial: the done ones by validation accuracy, then the pruned ones, then the rest; a column
    per searched option, in `order`."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
    searched = [k for k in order if any(k in t.params for t in trials)]
    group = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}
    trials.sort(key=lambda t: (group.get(t.state, 2), -(_score(t) or 0), t.number))
    rows = []
    for rank, t in enumerate(trials, start=1):
        score = _score(t)
        row: dict[str, Any] = {
            "rank": rank if t.state == TrialState.COMPLETE else "",
            "trial": t.number,
            "state": _state(t),
            "val_acc": "" if score is None else round(score, 4),
            "epochs": len(t.intermediate_values),
            "minutes": round(t.duration.total_seconds() / 60, 2) if t.duration else "",
        }
        row |= {k: cell(t.params.get(k)) for k in searched}
        rows.append(row | {"run": str(directory.trial(t.number).path)})
    return rows


def write_leaderboard(
    directory: TuneDir, study: optuna.Study, order: Sequence[str], test: dict[str, float] | None = None
) -> None:
    """leaderboard.csv and leaderboard.md, rewritten atomically after every trial; `test`: the best trial's
    test accuracy and macro-F1, measured once at the end."""
    rows = leaderboard_rows(directory, study, order)
    columns = list(rows[0]) if rows else [*COLUMNS, "run"]
    with atomic_output(directory.leaderboard) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    shown = [c for c in columns if c != "run"]
    headers = [
        "#",
        "trial",
        "state",
        "val accuracy",
        "epochs",
        "minutes",
        *(c.replace("_", "-") for c in shown[6:]),
    ]
    lines = [
        "# Hyperparameter search (ranked by validation accuracy)",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + " --- |" * len(headers),
    ]
    lines += ["| " + " | ".join(str(r[c]) if r[c] != "" else "-" for c in shown) + " |" for r in rows]
    lines += [
        "",
        "Every trial trained on the train images of the search's split and was scored on its validation "
        "images (its best epoch); no trial saw the test images. A pruned trial was stopped when its "
        "validation accuracy fell below the median of the earlier trials' at the same epoch.",
    ]
    if directory.best_config.is_file():
        lines += [
            "",
            f"Best: rank 1. Its options: `{directory.best_config.name}` (`actiscope train --config "
            f"{directory.best_config.name}` trains it again); its run and package: `{directory.best.name}/`.",
        ]
    if test is not None:
        lines += [
            "",
            f"**Test split, measured once after the search, for the best trial only:** accuracy "
            f"{test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} "
            f"(`{directory.best.eval.report.relative_to(directory.path)}`).",
        ]
    for plot, caption in (
        (directory.history_plot, "optimisation history"),
        (directory.importance_plot, "parameter importance"),
    ):
        if plot.is_file():
            lines += ["", f"![{caption}]({plot.name})"]
    atomic_write_text(directory.leaderboard_md, "\n".join(lines) + "\n")
