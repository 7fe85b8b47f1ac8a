"""Where dataset files come from: a registry of named datasets, a local mirror, or the internet.

`fetch(name)` returns a local folder holding the dataset, ready for `readers`. Files are
verified before use (size and md5 for downloads, the mirror's SHA256SUMS for a mirror),
written under a temporary name and renamed only once verified, and archives are extracted
into a temporary folder that is renamed into place only when every member was safe.
"""

import gzip
import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .errors import DataError, DownloadError
from .files import atomic_dir, atomic_path

ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".zip")
READ_SIZE = 1 << 16  # bytes per read of a download


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name (also its path inside a mirror), where to get it, its md5."""

    name: str
    urls: tuple[str, ...]
    md5: str
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: the files that make it. Archives among them are extracted."""

    name: str
    files: tuple[RemoteFile, ...]
    description: str = ""


_IDX_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


def _idx_file(name: str, md5: str, size: int) -> RemoteFile:
    return RemoteFile(f"mnist/{name}", tuple(base + name for base in _IDX_MIRRORS), md5, size)


REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add (or replace) a named dataset, so `fetch`, `load_dataset` and `--data` know it."""
    REGISTRY[spec.name] = spec
    return spec


register(
    DatasetSpec(
        "mnist_sample",
        (
            RemoteFile(
                "mnist_sample.tgz",
                ("https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz",),
                "2dbc7ec6f9259b583af0072c55816a88",
                3_214_948,
            ),
        ),
        "fastai's MNIST_SAMPLE: 3s and 7s, train/valid folders of PNGs (the chapter's data)",
    )
)
register(
    DatasetSpec(
        "mnist_png",
        (
            RemoteFile(
                "mnist_png.tgz",
                ("https://s3.amazonaws.com/fast-ai-imageclas/mnist_png.tgz",),
                "03639f83c4e3d19e0a3a53a8a997c487",
                15_683_414,
            ),
        ),
        "fastai's MNIST: all ten digits, training/testing folders of PNGs",
    )
)
register(
    DatasetSpec(
        "mnist",
        (
            _idx_file("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
            _idx_file("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28_881),
            _idx_file("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1_648_877),
            _idx_file("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4_542),
        ),
        "the original MNIST IDX files: all ten digits, 60,000 train and 10,000 test images",
    )
)


def cache_home() -> Path:
    """The cache folder: `DIGITLEARN_HOME`, else `$XDG_CACHE_HOME/digitlearn` or `~/.cache/digitlearn`."""
    if env := os.environ.get("DIGITLEARN_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "digitlearn"


def mirror() -> Path | None:
    """The local mirror folder named by `DIGITLEARN_MIRROR`, if any."""
    env = os.environ.get("DIGITLEARN_MIRROR")
    return Path(env).expanduser() if env else None


def file_hash(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fetch(dataset: str | DatasetSpec) -> Path:
    """Return the local folder of a registered dataset, getting and unpacking it on first use."""
    spec = dataset if isinstance(dataset, DatasetSpec) else REGISTRY.get(dataset)
    if spec is None:
        raise DataError(f"unknown dataset {dataset!r} (known: {', '.join(sorted(REGISTRY))})")
    target = cache_home() / "data" / spec.name
    if target.is_dir():  # only ever created by the rename below, so it is complete
        return target
    with atomic_dir(target) as staging:
        for remote in spec.files:
            local = _obtain(remote)
            if remote.name.endswith(ARCHIVE_SUFFIXES):
                extract_archive(local, staging)
            else:
                shutil.copyfile(local, staging / PurePosixPath(remote.name).name)
    return target


def _obtain(remote: RemoteFile) -> Path:
    """A verified local copy of `remote`: the mirror's file, or a download into the cache."""
    if (root := mirror()) is not None:
        return _from_mirror(root, remote)
    dest = cache_home() / "downloads" / remote.name
    if not dest.is_file():  # a file at dest was verified before it was renamed there
        download(remote, dest)
    return dest


def _from_mirror(root: Path, remote: RemoteFile) -> Path:
    if not root.is_dir():
        raise DownloadError(f"mirror folder {root} (DIGITLEARN_MIRROR) does not exist")
    path = root / remote.name
    if not path.is_file():
        raise DownloadError(f"mirror {root} (DIGITLEARN_MIRROR) has no file {remote.name}")
    sums = _read_sha256sums(root / "SHA256SUMS")
    if remote.name in sums:
        algorithm, expected = "sha256", sums[remote.name]
    else:
        algorithm, expected = "md5", remote.md5
    if (got := file_hash(path, algorithm)) != expected:
        hint = "" if sums else " (a mirror of re-packed files needs a SHA256SUMS file)"
        raise DownloadError(f"{path}: {algorithm} {got} does not match the expected {expected}{hint}")
    return path


def _read_sha256sums(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        if parts := line.split(maxsplit=1):
            if len(parts) != 2:
                raise DownloadError(f"{path}: malformed line {line!r}")
            sums[parts[1].lstrip("*").removeprefix("./")] = parts[0].lower()
    return sums


def download(remote: RemoteFile, dest: Path, retries: int = 3, timeout: float = 30.0) -> Path:
    """Download `remote` to `dest`, trying each URL in turn and retrying dropped connections.

    Only a file whose size and md5 match is renamed to `dest`; a bad download is deleted.
    """
    problems = [f"no URL is known for {remote.name}"]
    for url in remote.urls:
        for attempt in range(retries):
            try:
                with atomic_path(dest) as tmp:
                    _stream(url, tmp, remote, timeout)
                    _verify(tmp, remote, url)
                return dest
            except DownloadError as e:  # the server sent the wrong bytes: try the next URL
                problems.append(str(e))
                break
            except urllib.error.HTTPError as e:
                problems.append(f"{url}: HTTP {e.code} {e.reason}")
                if e.code < 500:
                    break
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                reason = getattr(e, "reason", None) or e
                problems.append(f"{url}: {reason}")
            if attempt + 1 < retries:
                time.sleep(0.5 * 2**attempt)
    raise DownloadError(f"could not download {remote.name}: {problems[-1]}")


def _stream(url: str, tmp: Path, remote: RemoteFile, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "digitlearn"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        announced = int(response.headers.get("Content-Length") or 0)
        received = 0
        with tqdm(
            total=announced or remote.size,
            unit="B",
            unit_scale=True,
            desc=remote.name,
            disable=None,
            leave=False,
        ) as bar:
            while chunk := response.read(READ_SIZE):
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if announced and received != announced:  # read() just stops when the peer hangs up early
        raise ConnectionError(f"connection dropped after {received:,} of {announced:,} bytes")


def _verify(path: Path, remote: RemoteFile, url: str) -> None:
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        raise DownloadError(
            f"{remote.name} from {url}: got {size:,} bytes, expected "
            f"{remote.size:,}; the bad download was deleted"
        )
    if (got := file_hash(path, "md5")) != remote.md5:
        raise DownloadError(
            f"{remote.name} from {url}: md5 {got}, expected {remote.md5}; the bad download was deleted"
        )


def extract_archive(archive: Path, dest: Path) -> None:
    """Extract a .tgz/.tar.gz/.tar/.zip into `dest`, refusing anything unsafe before writing.

    Unsafe: absolute names, `..` components, links that point outside `dest`, device files.
    On refusal nothing is extracted (callers extract into a folder that is then discarded).
    """
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                infos = z.infolist()
                for info in infos:
                    _check_member(archive, info.filename)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise DataError(f"{archive}: member {info.filename!r} is a link; refusing it")
                z.extractall(dest, members=_progress(infos, archive))
        else:
            with tarfile.open(archive) as t:
                members = t.getmembers()
                for member in members:
                    _check_tar_member(archive, member)
                # the standard library's "data" filter is a second safety net
                t.extractall(dest, members=_progress(members, archive), filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{archive}: not a readable archive ({e})") from None


def _progress(members: list, archive: Path) -> tqdm:
    return tqdm(members, desc=f"extracting {archive.name}", unit="file", disable=None, leave=False)


def _check_member(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(
            f"{archive}: member {name!r} would be written outside the target folder; nothing was extracted"
        )
    return path


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    path = _check_member(archive, member.name)
    if member.isdev():
        raise DataError(f"{archive}: member {member.name!r} is a device file; nothing was extracted")
    if member.issym() or member.islnk():
        # symlink targets are relative to the member's folder, hard links to the archive root
        target = PurePosixPath(member.linkname)
        base = path.parent if member.issym() else PurePosixPath()
        depth = 0
        for part in () if target.is_absolute() else (base / target).parts:
            depth += -1 if part == ".." else part != "."
            if depth < 0:
                break
        if target.is_absolute() or depth < 0:
            raise DataError(
                f"{archive}: link {member.name!r} points outside the target folder; nothing was extracted"
            )
