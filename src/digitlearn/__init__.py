"""digitlearn: fastbook chapter 4 as real software."""

__version__ = "0.1.0"

from .baseline import PixelSimilarity, mnist_distance, rmse_distance
from .data import Dataset, Split, load_dataset
from .errors import DataError, DigitlearnError, DownloadError
from .sources import DatasetSpec, RemoteFile, fetch, register

__all__ = [
    "DataError",
    "Dataset",
    "DatasetSpec",
    "DigitlearnError",
    "DownloadError",
    "PixelSimilarity",
    "RemoteFile",
    "Split",
    "fetch",
    "load_dataset",
    "mnist_distance",
    "register",
    "rmse_distance",
]
