from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from actiscope.predict import Predictor


def test_onnx_prediction_never_imports_torch(package: Path, folder: Path, tmp_path: Path) -> None:
    """torch's import is seconds of start-up: `actiscope predict` with an ONNX model goes without it."""
    from actiscope.export import export

    export(package, "onnx")
    out = tmp_path / "predictions.csv"
    argv = ["predict", str(package), str(folder), "--out", str(out), "--backend", "onnx", "--workers", "2"]
    script = f"import sys; from actiscope.cli import main; code = main({argv!r}); print(code, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "2 False"  # two unreadable files, and no torch
    with out.open() as fh:
        rows = {Path(r["filename"]).name: r for r in csv.DictReader(fh)}
    reference = Predictor.load(package, backend="torch")
    for name, row in rows.items():
        if not row["error"]:
            [expected] = reference.predict([Path(row["filename"])])
            assert row["label"] == expected.label, name
