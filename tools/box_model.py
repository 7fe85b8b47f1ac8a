"""Make the model that ships inside the package: the fast recipe's, trained by digitlearn itself.

    python tools/box_model.py        # about 10 seconds; needs MNIST (DIGITLEARN_MIRROR or a download)

Trains `digitlearn train --data mnist --recipe fast --seed 42` and keeps its config.json and
weights.safetensors (0.4 MB) in src/digitlearn/inference/boxed/, which `Predictor.load()`,
`digitlearn predict IMAGE...` and `digitlearn serve` use when no run folder is given.
tests/test_boxed.py retrains it from what its config.json records and checks the accuracy.
"""

import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from digitlearn import train_run
from digitlearn.inference.predictor import BOXED
from digitlearn.models.saved import CONFIG, WEIGHTS

with tempfile.TemporaryDirectory() as tmp:
    run = train_run("mnist", "fast", Path(tmp) / "run", seed=42, progress=False)
    BOXED.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS):
        shutil.copyfile(run.path / name, BOXED / name)
print(f"wrote {BOXED}: accuracy {run.record['results']['accuracy']:.4f}")
