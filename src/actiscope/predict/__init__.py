"""Prediction: a model package in, top-k classes with probabilities out.

preprocess  model.json's preprocessing, through the functions training uses (Preprocessor)
backends    PyTorch and ONNX Runtime behind one Protocol (Backend), and the `auto` rule (choose_backend)
pool        decoding files in background processes beside inference (decoded_batches)
predictor   the Predictor, and what it returns (Prediction, Segment)
batch       many files in, a CSV of predictions out (collect_inputs, read_boxes, predict_rows,
            write_predictions_csv)

Nothing here imports torch unless the PyTorch backend is loaded, nor any training code.
"""

from actiscope.predict.backends import (
    BACKENDS,
    INT8_MAX_DROP,
    Backend,
    OnnxBackend,
    TorchBackend,
    choose_backend,
    load_backend,
    softmax,
)
from actiscope.predict.batch import (
    InputFile,
    Progress,
    boxes_for,
    collect_inputs,
    predict_rows,
    prediction_row,
    read_boxes,
    timeline_rows,
    write_predictions_csv,
)
from actiscope.predict.pool import DecodedBatch, decoded_batches
from actiscope.predict.predictor import Prediction, Predictor, Segment
from actiscope.predict.preprocess import ImageInput, Preprocessor

__all__ = [
    "BACKENDS",
    "INT8_MAX_DROP",
    "Backend",
    "DecodedBatch",
    "ImageInput",
    "InputFile",
    "OnnxBackend",
    "Prediction",
    "Predictor",
    "Preprocessor",
    "Progress",
    "Segment",
    "TorchBackend",
    "boxes_for",
    "choose_backend",
    "collect_inputs",
    "decoded_batches",
    "load_backend",
    "predict_rows",
    "prediction_row",
    "read_boxes",
    "softmax",
    "timeline_rows",
    "write_predictions_csv",
]
