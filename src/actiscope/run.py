"""The run, comparison and search directories: the one owner of their layouts.

A run (`actiscope train`) is::

    runs/<name>/
      config.yaml  split.json  history.csv  curves.png
      checkpoints/last.ckpt  checkpoints/best.ckpt
      model/       the deployable package (model.safetensors + model.json, see package.py)
      eval/        metrics.json, report.md, predictions.csv and the plots (an EvalDir)
      logs/        what --logger writes: csv/ and tensorboard/ (Lightning's version_N folders), and
                   MLflow's local store (mlflow.db, mlflow-artifacts/) unless a tracking URI is given

A comparison (`actiscope compare`) is::

    <out>/
      split.json  leaderboard.csv  leaderboard.md  compare.png
      best/        a copy of the winner's package
      ensemble/    with --ensemble K: the K best as one package, laid out as a run (a RunDir):
                   split.json (the comparison's), model/ (the ensemble package), eval/
      runs/<model>/  one run per architecture (a RunDir, with compare.json: its leaderboard row)

A hyperparameter search (`actiscope tune`) is::

    <out>/
      study.db  the Optuna study (SQLite): a rerun continues it
      split.json  search-split.json (the same without its test images: what every trial sees)
      leaderboard.csv  leaderboard.md  history.png  importance.png  best.yaml
      trials/trial-<n>/  one run per trial (a RunDir)
      best/        the best trial's run on split.json, evaluated once on its test images (a RunDir)

Nothing else spells these names: code asks a RunDir, EvalDir, CompareDir or TuneDir for a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

META_FILE = "model.json"  # the package's sidecar, written last (package.py owns the package's insides)


@dataclass(frozen=True)
class RunDir:
    """One training run's directory. Constructing it touches nothing on disk."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # files and folders of a run
    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def model(self) -> Path:
        """The deployable package's folder."""
        return self.path / "model"

    @property
    def eval(self) -> EvalDir:
        return EvalDir(self.path / "eval")

    @property
    def logs(self) -> Path:
        """The experiment loggers' folder: each logger writes into `logs / <its name>`."""
        return self.path / "logs"

    @property
    def mlflow_store(self) -> str:
        """The URI of the run's own MLflow store: a SQLite file (MLflow 3 refuses its file store unless
        MLFLOW_ALLOW_FILE_STORE is set; SQLite is the local store it recommends)."""
        return f"sqlite:///{(self.logs / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.logs / "mlflow-artifacts"

    @property
    def name(self) -> str:
        return self.path.name

    # what is there
    def has_config(self) -> bool:
        return self.config.is_file()

    def has_model(self) -> bool:
        """Whether the package is whole (model.json is written last)."""
        return (self.model / META_FILE).is_file()

    def has_checkpoint(self) -> bool:
        return self.last_checkpoint.is_file()

    def exists(self) -> bool:
        """Whether this looks like a run: it has its configuration or a finished package."""
        return self.has_config() or self.has_model()

    @classmethod
    def of_package(cls, package: str | Path) -> RunDir | None:
        """The run a package folder belongs to (its model/ folder), or None for a stand-alone package."""
        package = Path(package)
        run = cls(package.parent)
        return run if package.name == run.model.name and run.split.is_file() else None

    @classmethod
    def find_all(cls, root: str | Path) -> list[RunDir]:
        """The runs under `root`: plain runs (root/<name>), the runs and the ensemble inside each comparison
        there, and the best run of each search (its trials are the search's leaderboard, not runs of their own)."""
        root = Path(root)
        found = []
        for child in sorted(root.glob("*")) if root.is_dir() else []:
            if cls(child).exists():
                found.append(cls(child))
            comparison = CompareDir(child)
            found += [cls(p) for p in sorted(comparison.runs.glob("*")) if cls(p).exists()]
            if comparison.ensemble.exists():
                found.append(comparison.ensemble)
            if TuneDir(child).best.exists():
                found.append(TuneDir(child).best)
        return found


@dataclass(frozen=True)
class EvalDir:
    """What `actiscope evaluate` writes: a run's eval/, or any --out folder."""

    path: Path

    PLOTS = ("confusion_matrix.png", "roc.png", "pr.png", "reliability.png", "per_class.png", "mistakes.png")

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.csv"

    def plot(self, name: str) -> Path:
        """One of PLOTS."""
        if name not in self.PLOTS:
            raise ValueError(f"{name!r} is not one of the evaluation plots: {', '.join(self.PLOTS)}")
        return self.path / name

    @classmethod
    def for_package(cls, package: str | Path) -> EvalDir:
        """runs/<name>/eval for a run's package, else eval/ inside a stand-alone package."""
        run = RunDir.of_package(package)
        return run.eval if run is not None else cls(Path(package) / "eval")


@dataclass(frozen=True)
class CompareDir:
    """The output folder of one `actiscope compare`."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def leaderboard(self) -> Path:
        return self.path / "leaderboard.csv"

    @property
    def leaderboard_md(self) -> Path:
        return self.path / "leaderboard.md"

    @property
    def plot(self) -> Path:
        return self.path / "compare.png"

    @property
    def best(self) -> Path:
        """A copy of the winner's package."""
        return self.path / "best"

    @property
    def ensemble(self) -> RunDir:
        """The --ensemble package of the best K, in a folder laid out as a run (split.json, model/, eval/)."""
        return RunDir(self.path / "ensemble")

    @property
    def runs(self) -> Path:
        return self.path / "runs"

    @property
    def row(self) -> str:
        """The file name of a finished architecture's leaderboard row, kept in its run directory."""
        return "compare.json"

    def run(self, model: str) -> RunDir:
        """The run of one architecture (a timm/<name> model gets a folder without the slash)."""
        return RunDir(self.runs / model.replace("/", "-"))

    def has_leaderboard(self) -> bool:
        """Whether a comparison's leaderboard is here (a search's folder holds a leaderboard of its own)."""
        return self.leaderboard.is_file() and not TuneDir(self.path).study.is_file()


@dataclass(frozen=True)
class TuneDir:
    """The output folder of one `actiscope tune` (a hyperparameter search)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def study(self) -> Path:
        """The Optuna study's SQLite database."""
        return self.path / "study.db"

    @property
    def split(self) -> Path:
        """The one split of the search: train, val and the test images only `best` is evaluated on."""
        return self.path / "split.json"

    @property
    def search_split(self) -> Path:
        """`split` without its test images: what every trial trains on and is scored on."""
        return self.path / "search-split.json"

    @property
    def leaderboard(self) -> Path:
        return self.path / "leaderboard.csv"

    @property
    def leaderboard_md(self) -> Path:
        return self.path / "leaderboard.md"

    @property
    def history_plot(self) -> Path:
        """Validation accuracy by trial, best so far."""
        return self.path / "history.png"

    @property
    def importance_plot(self) -> Path:
        return self.path / "importance.png"

    @property
    def best_config(self) -> Path:
        """The best trial's options, the form `actiscope train --config` takes."""
        return self.path / "best.yaml"

    @property
    def trials(self) -> Path:
        return self.path / "trials"

    def trial(self, number: int) -> RunDir:
        return RunDir(self.trials / f"trial-{number:03d}")

    @property
    def best(self) -> RunDir:
        return RunDir(self.path / "best")

    @property
    def best_trial(self) -> Path:
        """Which trial `best` holds (a JSON file in it), so a rerun with the same winner evaluates nothing."""
        return self.best.path / "trial.json"

    def has_leaderboard(self) -> bool:
        return self.leaderboard.is_file()
