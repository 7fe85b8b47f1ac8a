"""digitlearn: fastbook chapter 4 as real software."""

import importlib
import sys
from collections.abc import Callable

__version__ = "0.1.0"

# Each public name is imported from its submodule on first use (PEP 562), not here: the
# submodules load torch, and some matplotlib or scipy, which take seconds, so `import digitlearn`
# and the command line's `--help` would otherwise wait for libraries they never use.
_SUBMODULES = {
    "chapter.baseline": ("PixelSimilarity", "mnist_distance", "rmse_distance"),
    "data.dataset": ("Dataset", "Split", "load_dataset"),
    "data.loaders": ("DataLoader", "DataLoaders", "InputFormat"),
    "data.sources": ("DatasetSpec", "RemoteFile", "fetch", "register"),
    "device": ("pick_device", "set_seed"),
    "errors": ("DataError", "DigitlearnError", "DownloadError"),
    "inference.interpret": ("ClassificationInterpretation", "Interpretation"),
    "inference.predictor": ("NumberPrediction", "Prediction", "Predictor"),
    "models": ("cnn", "lenet", "linear1", "mlp", "resnet", "simple_net"),
    "models.layers": ("init_params",),
    "plots.figures": ("show_image", "show_images"),
    "runs.model": ("load_learner", "load_model"),
    "runs.train": ("Run", "resume_run", "train_run"),
    "training": (
        "Augment", "CSVLogger", "Callback", "CancelBatchException", "CancelEpochException",
        "CancelFitException", "CancelStepException", "CancelTrainException", "CancelValidateException",
        "EarlyStopping", "History", "LRFindResult", "Learner", "MixedPrecision", "ParamScheduler",
        "ProgressCallback", "Recorder", "SaveBestModel", "SkipLearned", "Summary", "TensorBoard",
        "TrainingDiverged", "ValidateAtEnd", "random_affine", "whiten_first_conv",
    ),
    "training.losses": ("bce_loss", "cross_entropy", "mnist_loss"),
    "training.metrics": ("accuracy", "batch_accuracy", "error_rate"),
    "training.optim": ("SGD", "Adadelta", "Adam", "BasicOptim"),
    "training.recipes": ("RECIPES", "Recipe"),
    "vision.images": ("ImageError",),
    "vision.prepare": ("NoDigitError", "naive_resize", "to_mnist"),
}  # fmt: skip


def lazy_exports(package: str, table: dict[str, tuple[str, ...]]) -> tuple[list[str], Callable, Callable]:
    """`__all__`, `__getattr__` and `__dir__` for a package whose public names are imported from
    their modules (`table`: module -> names) on first use, not when the package is (PEP 562)."""
    where = {name: module for module, names in table.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        setattr(sys.modules[package], name, value)  # found at once next time
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return sorted(where), __getattr__, __dir__


# the public names, from the one table above
__all__, __getattr__, __dir__ = lazy_exports(__name__, _SUBMODULES)
