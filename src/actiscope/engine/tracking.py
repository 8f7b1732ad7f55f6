"""Experiment tracking (`--logger csv,tensorboard,mlflow`) through Lightning's own loggers.

The trainer gets the loggers (`experiment_loggers`): Lightning sends them what the LightningModule logs
(losses, accuracies, F1, per epoch) and History adds the learning rate, the epoch's seconds and the
throughput. Once the package is whole the workflow layer sends them its evaluation (`log_outcome`): the
metrics, the confusion matrix as an image (TensorBoard) and the package and evaluation folders as
artifacts (MLflow). The run directory's history.csv and curves.png do not depend on any of this.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger
from PIL import Image

from actiscope.options import ConfigError, TrainOptions
from actiscope.run import RunDir

EXPERIMENT = "actiscope"  # the MLflow experiment every run goes into, named by its run directory


def experiment_loggers(options: TrainOptions, run: RunDir) -> list[Logger]:
    """The loggers `options.output.logger` names, writing under `run.logs` (MLflow: into the run's own
    SQLite store unless `options.output.mlflow_uri` names another), each given the options as parameters.
    A resumed run gets Lightning's next version folder, and a new MLflow run."""
    loggers: list[Logger] = []
    for name in options.output.logger:
        if name == "csv":
            loggers.append(CSVLogger(run.logs, name="csv"))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(run.logs, name="tensorboard", default_hp_metric=False))
        else:
            loggers.append(_mlflow(options.output.mlflow_uri, run))
    for logger in loggers:
        logger.log_hyperparams(options.flat())
    return loggers


def _mlflow(uri: str | None, run: RunDir) -> MLFlowLogger:
    from mlflow.exceptions import MlflowException

    local = uri is None
    store = run.mlflow_store if uri is None else uri
    if local:
        run.logs.mkdir(parents=True, exist_ok=True)
    logger = MLFlowLogger(
        experiment_name=EXPERIMENT,
        run_name=run.name,
        tracking_uri=store,
        artifact_location=str(run.mlflow_artifacts.resolve()) if local else None,
    )
    try:
        logger.experiment  # noqa: B018  # creates the experiment and the run: an unreachable store fails here
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--logger mlflow: cannot use the tracking store {store} ({first})") from None
    return logger


def log_outcome(
    loggers: list[Logger],
    metrics: Mapping[str, float],
    *,
    images: Mapping[str, Path] | None = None,
    folders: Mapping[str, Path] | None = None,
) -> None:
    """After training: `metrics` to every logger; `images` (PNG files, by tag) to TensorBoard; `folders`
    (by artifact path) to MLflow, which keeps files. Each logger is finalised again afterwards, as
    Lightning finalised it when testing ended."""
    for logger in loggers:
        if metrics:
            logger.log_metrics(dict(metrics))
        if isinstance(logger, TensorBoardLogger):
            for tag, path in (images or {}).items():
                pixels = np.asarray(Image.open(path).convert("RGB"))
                logger.experiment.add_image(tag, pixels, dataformats="HWC")
        if isinstance(logger, MLFlowLogger) and logger.run_id is not None:
            for artifact_path, folder in (folders or {}).items():
                logger.experiment.log_artifacts(logger.run_id, str(folder), artifact_path)
        logger.finalize("success")
