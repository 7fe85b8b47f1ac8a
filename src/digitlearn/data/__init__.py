"""Data: datasets by name or path, read into tensors, and batched for training.

    sources   the dataset registry, downloads, the mirror, safe extraction, the cache
    formats   the reader registry (Reader, register_reader) and read_path, which asks each reader
    idx       MNIST's IDX files, plain or gzipped, checked from their headers
    folders   class folders in fastai's layouts, decoded in parallel and cached
    archives  .tgz, .tar and .zip files of either, extracted safely into the cache
    dataset   Dataset (train and valid Splits, classes), InputFormat, load_dataset
    loaders   DataLoader, DataLoaders: float, normalised, flat or image-shaped, batched by slicing

Data sits above `vision` (its image folders are opened safely there) and below everything else.
"""
