"""digitlearn: fastbook chapter 4 as real software."""

__version__ = "0.1.0"

from .augment import Augment, random_affine
from .baseline import PixelSimilarity, mnist_distance, rmse_distance
from .callbacks import (
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidateException,
    CSVLogger,
    EarlyStopping,
    MixedPrecision,
    ParamScheduler,
    ProgressCallback,
    Recorder,
    SaveBestModel,
    TrainingDiverged,
)
from .data import Dataset, InputFormat, Split, load_dataset
from .errors import DataError, DigitlearnError, DownloadError
from .interpret import Interpretation
from .learner import Learner, pick_device, set_seed
from .loaders import DataLoader, DataLoaders
from .losses import bce_loss, cross_entropy, mnist_loss
from .metrics import accuracy, batch_accuracy, error_rate
from .models import cnn, init_params, linear1, mlp, resnet, simple_net
from .optim import SGD, Adadelta, Adam, BasicOptim
from .predictor import Prediction, Predictor
from .preprocess import ImageError, NoDigitError, naive_resize, to_mnist
from .recipes import RECIPES, Recipe
from .runs import load_model
from .sources import DatasetSpec, RemoteFile, fetch, register

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
    "DataError",
    "DataLoader",
    "DataLoaders",
    "Dataset",
    "DatasetSpec",
    "DigitlearnError",
    "DownloadError",
    "EarlyStopping",
    "ImageError",
    "InputFormat",
    "Interpretation",
    "Learner",
    "MixedPrecision",
    "NoDigitError",
    "ParamScheduler",
    "PixelSimilarity",
    "Prediction",
    "Predictor",
    "ProgressCallback",
    "Recipe",
    "Recorder",
    "RemoteFile",
    "SaveBestModel",
    "Split",
    "TrainingDiverged",
    "accuracy",
    "batch_accuracy",
    "bce_loss",
    "cnn",
    "cross_entropy",
    "error_rate",
    "fetch",
    "init_params",
    "linear1",
    "load_dataset",
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
    "simple_net",
    "to_mnist",
]
