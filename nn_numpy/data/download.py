"""The data directory, and SHA-256-verified downloads of MNIST and the book's weights.

The data directory holds ``mnist/<the four .gz names>`` and ``sample_weight.pkl``.
A file already there is hashed and used without any network access; one that fails
its hash is moved aside as ``NAME.corrupt-<unix time>`` and fetched again. Downloads
go through pooch (temporary file, hash check, then rename), so a failed or interrupted
download leaves nothing behind, not even the folders it would have created. Mirrors are tried in order, one stderr line per failure.
"""

import hashlib
import os
import sys
import time
from pathlib import Path

from .errors import DataCorruptedError, DataNotFoundError

# Published SHA-256 of each file, as torchvision keeps them: data, not code.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
WEIGHTS_NAME = "sample_weight.pkl"
WEIGHTS_URL = "https://github.com/oreilly-japan/deep-learning-from-scratch/raw/master/ch03/sample_weight.pkl"
WEIGHTS_SHA256 = "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13"


def resolve_data_dir(data_dir=None):
    """The data directory: ``data_dir``, else ``$NN_DATA_DIR``, else the per-user cache ``dlfs-ch3``."""
    if data_dir is None:
        data_dir = os.environ.get("NN_DATA_DIR") or None
    if data_dir is None:
        import platformdirs  # only here: the common paths never pay for it

        data_dir = platformdirs.user_cache_dir("dlfs-ch3")
    return Path(data_dir).expanduser()


def mnist_mirrors():
    """Base URLs to try in order: ``$NN_MNIST_MIRRORS`` (comma-separated), else :data:`DEFAULT_MIRRORS`."""
    urls = [url.strip() for url in os.environ.get("NN_MNIST_MIRRORS", "").split(",") if url.strip()]
    return urls or list(DEFAULT_MIRRORS)


def fetch_mnist_file(name, data_dir=None):
    """Path of a verified MNIST file ``<data_dir>/mnist/<name>``, downloading it if absent.

    When ``<name>`` is absent but the uncompressed file (``<name>`` less ``.gz``) was
    placed by hand, that path is returned instead, without network access: its hash is
    unknown, so the caller's IDX parser checks its structure. A ``.gz`` present but
    corrupt is moved aside first, so a hand-placed file then takes its place.
    """
    if name not in MNIST_FILES:
        raise ValueError(f"unknown MNIST file {name!r}; expected one of {', '.join(MNIST_FILES)}")
    folder = resolve_data_dir(data_dir) / "mnist"
    path = folder / name
    if _verified(path, MNIST_FILES[name]):
        return path
    if path.with_suffix("").is_file():
        return path.with_suffix("")
    urls = [base.rstrip("/") + "/" + name for base in mnist_mirrors()]
    advice = f"put the MNIST files {', '.join(MNIST_FILES)} in {folder} (or set NN_DATA_DIR / --data-dir)"
    return _download(path, urls, MNIST_FILES[name], advice)


def hand_placed_mnist_files(names, data_dir=None):
    """Paths of the uncompressed files :func:`fetch_mnist_file` resolved ``names`` to, by hand; no hashing.

    Call it after fetching: a ``.gz`` still absent then means its hand-placed raw file was used.
    """
    folder = resolve_data_dir(data_dir) / "mnist"
    return [folder / name[:-3] for name in names
            if not (folder / name).is_file() and (folder / name[:-3]).is_file()]


def fetch_weights(data_dir=None):
    """Path of the book's verified ``<data_dir>/sample_weight.pkl``, downloaded from ``$NN_WEIGHTS_URL``
    (default :data:`WEIGHTS_URL`) if absent."""
    folder = resolve_data_dir(data_dir)
    path = folder / WEIGHTS_NAME
    if _verified(path, WEIGHTS_SHA256):
        return path
    url = os.environ.get("NN_WEIGHTS_URL") or WEIGHTS_URL
    advice = f"put the book's {WEIGHTS_NAME} in {folder} (or set NN_DATA_DIR / --data-dir, or pass --weights)"
    return _download(path, [url], WEIGHTS_SHA256, advice)


def is_writable(folder):
    """Whether we may write in ``folder``: False also when root could, but its mode has no write bit.

    CI's shared data dir is read-only by mode (0555); honouring that as root too keeps
    tests run as root from writing into it.
    """
    return os.access(folder, os.W_OK) and bool(os.stat(folder).st_mode & 0o222)


def sha256_file(path):
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _verified(path, sha256):
    """True if ``path`` holds the expected bytes; False if it is absent or was just moved aside."""
    if not path.is_file():
        return False
    actual = sha256_file(path)
    if actual == sha256:
        return True
    aside = _move_aside(path)
    if aside is None:  # a read-only data dir (CI's shared one): only the user can replace the file
        raise DataCorruptedError(f"{path} fails its SHA-256 check (expected {sha256}, got {actual}) and "
                                 f"{path.parent} is read-only: replace the file by hand")
    print(f"{path} fails its SHA-256 check (expected {sha256[:12]}..., got {actual[:12]}...); "
          f"moved it to {aside.name} and fetching it again", file=sys.stderr)
    return False


def _move_aside(path):
    """Rename ``path`` to ``NAME.corrupt-<unix time>`` and return the new path; None if the dir is read-only."""
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    if not is_writable(path.parent):
        return None
    try:
        os.replace(path, aside)
    except OSError:
        return None
    return aside


def _download(path, urls, sha256, advice):
    """Download ``path`` from the first of ``urls`` whose bytes match ``sha256``; each failure is one line."""
    if path.parent.is_dir() and not is_writable(path.parent):
        raise DataNotFoundError(f"{path.name} is missing and cannot be saved in {path.parent} (read-only); {advice}")
    created = _missing_folders(path.parent)  # pooch creates them before it downloads anything
    try:
        return _first_good_mirror(path, urls, sha256, advice)
    except BaseException:  # failed or interrupted: leave no empty folders behind either
        for folder in created:
            try:
                folder.rmdir()
            except OSError:  # not empty after all (another process wrote there), or never made
                pass
        raise


def _missing_folders(folder):
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _first_good_mirror(path, urls, sha256, advice):
    """Try ``urls`` in order; ``path`` once one gives the ``sha256`` bytes, else DataNotFoundError."""
    import logging

    import pooch
    import requests
    from tqdm import tqdm

    pooch.get_logger().setLevel(logging.WARNING)  # our own lines say what happens
    for i, url in enumerate(urls):
        # leave=False: pooch closes the bar before it checks the hash, so the outcome is
        # told by one line of ours instead of a bar at 100% for a download that then fails.
        bar = tqdm(total=1, desc=path.name, unit="B", unit_scale=True, ncols=79, leave=False)
        try:
            pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=path.name, path=path.parent,
                           downloader=pooch.HTTPDownloader(progressbar=bar, chunk_size=1 << 16))
            print(f"downloaded {path} from {url} (SHA-256 verified)", file=sys.stderr)
            return path
        except requests.RequestException as err:  # before OSError: it is one
            reason = _reason(err)
        except ValueError:  # pooch's hash mismatch, raised after deleting its temporary file
            reason = "the bytes fail the SHA-256 check (an error page or a damaged copy?)"
        except OSError as err:  # our side, e.g. a read-only dir: another mirror will not help
            raise DataNotFoundError(f"{path.name} is missing and cannot be saved in {path.parent} "
                                    f"({_one_line(err)}); {advice}") from None
        finally:
            bar.close()
        more = "; trying the next" if i + 1 < len(urls) else ""
        print(f"mirror {url} failed: {reason}{more}", file=sys.stderr)
    raise DataNotFoundError(f"{path.name} is missing and could not be downloaded "
                            f"({len(urls)} URL{'s' * (len(urls) > 1)} tried); {advice}")


def _reason(err):
    """A requests error in short: the HTTP status, else urllib3's innermost cause."""
    if err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason}"
    return _one_line(getattr(err.args[0], "reason", None) or err if err.args else err)


def _one_line(err):
    return " ".join(str(err).split())[:200]
