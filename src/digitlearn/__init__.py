"""digitlearn: fastbook chapter 4 as real software."""

import importlib

__version__ = "0.1.0"

# Each public name is imported from its submodule on first use (PEP 562), not here: the
# submodules load torch, and some matplotlib or scipy, which take seconds, so `import digitlearn`
# and the command line's `--help` would otherwise wait for libraries they never use.
_SUBMODULES = {
    "baseline": ("PixelSimilarity", "mnist_distance", "rmse_distance"),
    "data": ("Dataset", "InputFormat", "Split", "load_dataset"),
    "device": ("pick_device", "set_seed"),
    "errors": ("DataError", "DigitlearnError", "DownloadError"),
    "interpret": ("ClassificationInterpretation", "Interpretation"),
    "loaders": ("DataLoader", "DataLoaders"),
    "losses": ("bce_loss", "cross_entropy", "mnist_loss"),
    "metrics": ("accuracy", "batch_accuracy", "error_rate"),
    "models": ("cnn", "lenet", "linear1", "mlp", "resnet", "simple_net"),
    "models.layers": ("init_params",),
    "optim": ("SGD", "Adadelta", "Adam", "BasicOptim"),
    "figures": ("show_image", "show_images"),
    "predictor": ("NumberPrediction", "Prediction", "Predictor"),
    "images": ("ImageError",),
    "preprocess": ("NoDigitError", "naive_resize", "to_mnist"),
    "recipes": ("RECIPES", "Recipe"),
    "runs": ("load_model",),
    "sources": ("DatasetSpec", "RemoteFile", "fetch", "register"),
    "training": (
        "Augment", "CSVLogger", "Callback", "CancelBatchException", "CancelEpochException",
        "CancelFitException", "CancelStepException", "CancelTrainException", "CancelValidateException",
        "EarlyStopping", "History", "LRFindResult", "Learner", "MixedPrecision", "ParamScheduler",
        "ProgressCallback", "Recorder", "SaveBestModel", "SkipLearned", "Summary", "TrainingDiverged",
        "ValidateAtEnd", "load_learner", "random_affine",
    ),
}  # fmt: skip

__all__ = [
    "RECIPES",
    "SGD",
    "Adadelta",
    "Adam",
    "Augment",
    "BasicOptim",
    "CSVLogger",
    "Callback",
    "CancelBatchException",
    "CancelEpochException",
    "CancelFitException",
    "CancelStepException",
    "CancelTrainException",
    "CancelValidateException",
    "ClassificationInterpretation",
    "DataError",
    "DataLoader",
    "DataLoaders",
    "Dataset",
    "DatasetSpec",
    "DigitlearnError",
    "DownloadError",
    "EarlyStopping",
    "History",
    "ImageError",
    "InputFormat",
    "Interpretation",
    "LRFindResult",
    "Learner",
    "MixedPrecision",
    "NoDigitError",
    "NumberPrediction",
    "ParamScheduler",
    "PixelSimilarity",
    "Prediction",
    "Predictor",
    "ProgressCallback",
    "Recipe",
    "Recorder",
    "RemoteFile",
    "SaveBestModel",
    "SkipLearned",
    "Split",
    "Summary",
    "TrainingDiverged",
    "ValidateAtEnd",
    "accuracy",
    "batch_accuracy",
    "bce_loss",
    "cnn",
    "cross_entropy",
    "error_rate",
    "fetch",
    "init_params",
    "lenet",
    "linear1",
    "load_dataset",
    "load_learner",
    "load_model",
    "mlp",
    "mnist_distance",
    "mnist_loss",
    "naive_resize",
    "pick_device",
    "random_affine",
    "register",
    "resnet",
    "rmse_distance",
    "set_seed",
    "show_image",
    "show_images",
    "simple_net",
    "to_mnist",
]


def __getattr__(name: str) -> object:
    module = next((m for m, names in _SUBMODULES.items() if name in names), None)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # found at once next time
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
