"""Data: datasets by name or path, read into tensors, and batched for training.

    sources   the dataset registry, downloads, the mirror, safe extraction, the cache
    readers   one reader per format (IDX files, image folders, archives), chosen in one place
    dataset   Dataset (train and valid Splits, classes), InputFormat, load_dataset
    loaders   DataLoader, DataLoaders: float, normalised, flat or image-shaped, batched by slicing

Data sits above `vision` (its image folders are opened safely there) and below everything else.
"""
