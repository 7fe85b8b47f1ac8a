"""Datasets in archives (.tgz, .tar.gz, .tar, .zip) of class folders or IDX files: extracted once
into the cache (safely, within budgets: see `sources.extract_archive`), then read as a folder."""

import hashlib
import os
import re
from pathlib import Path

from ..files import atomic_dir, remove_stale
from .formats import Reader, Size, Splits, read_path, register_reader
from .sources import ARCHIVE_SUFFIXES, cache_home, extract_archive


def extracted(archive: Path) -> Path:
    """Extract a user's archive once into the cache; later loads reuse the extracted folder."""
    st = archive.stat()
    key = hashlib.sha256(
        b"%s %d %d" % (os.fsencode(archive.resolve()), st.st_size, st.st_mtime_ns)
    ).hexdigest()
    stem = re.sub(r"(\.tar\.gz|\.tgz|\.tar|\.zip)$", "", archive.name, flags=re.I)
    target = cache_home() / "extracted" / f"{stem}-{key[:12]}"
    if target.is_dir():
        remove_stale(target)  # what runs killed mid-extraction left, of this or older archives
    else:
        with atomic_dir(target) as staging:
            extract_archive(archive, staging)
    return target


def read_archive(archive: Path, found: object, size: Size | None) -> Splits:
    return read_path(extracted(archive), size)


register_reader(Reader("archives", lambda path: path, read_archive, files=ARCHIVE_SUFFIXES))
