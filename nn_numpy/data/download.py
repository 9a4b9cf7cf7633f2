"""The data directory, and SHA-256-verified downloads of MNIST and the book's weights.

The data directory holds ``mnist/<the four .gz names>`` and ``sample_weight.pkl``.
A file already there is hashed and used without any network access; one that fails
its hash is moved aside as ``NAME.corrupt-<unix time>`` and fetched again. Downloads
go through pooch (temporary file, hash check, then rename), so a failed or interrupted
download leaves nothing behind, not even the folders it would have created. Mirrors are tried in order, one stderr line per failure.
A mirror is dropped as soon as it sends more than the file's known size or takes longer than
``$NN_DOWNLOAD_TIMEOUT`` seconds (default :data:`DEFAULT_TIMEOUT_S`) for one file.

A run killed with SIGKILL cannot clean up: each fetch removes the partial downloads and
caches such a run left in its folder (:func:`remove_stale_leftovers`).
"""

import hashlib
import os
import re
import sys
import time
from pathlib import Path

from .errors import DataCorruptedError, DataNotFoundError, NNError
from .files import new_file_mode

# SHA-256 of each file: data, not code. torchvision pins the same files by MD5, not SHA-256
# (the two test files' MD5s match its).
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# Their sizes in bytes: a mirror sending more is cut off there, instead of filling the disk.
MNIST_SIZES = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
WEIGHTS_NAME = "sample_weight.pkl"
WEIGHTS_URL = "https://github.com/oreilly-japan/deep-learning-from-scratch/raw/master/ch03/sample_weight.pkl"
WEIGHTS_SHA256 = "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13"
WEIGHTS_SIZE = 181_853
# Per file, all reads together: the 9.9 MB training images take 10 min at 128 kbit/s.
DEFAULT_TIMEOUT_S = 900
READ_TIMEOUT_S = 30  # per connect and per read: a mirror silent this long is dropped at once


def resolve_data_dir(data_dir=None):
    """The data directory: ``data_dir``, else ``$NN_DATA_DIR``, else the per-user cache ``dlfs-ch3``."""
    if data_dir is None:
        data_dir = os.environ.get("NN_DATA_DIR") or None
    try:
        if data_dir is None:
            import platformdirs  # only here: the common paths never pay for it

            data_dir = platformdirs.user_cache_dir("dlfs-ch3")
        return Path(data_dir).expanduser()
    except (RuntimeError, KeyError) as err:  # HOME unset and the uid has no passwd entry (docker --user)
        raise NNError(f"cannot find a home folder for the data dir ({_one_line(err)}): "
                      f"pass --data-dir or set NN_DATA_DIR") from None


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
    remove_stale_leftovers(folder)
    if _verified(path, MNIST_FILES[name]):
        return path
    if path.with_suffix("").is_file():
        return path.with_suffix("")
    urls = [base.rstrip("/") + "/" + name for base in mnist_mirrors()]
    advice = f"put the MNIST files {', '.join(MNIST_FILES)} in {folder} (or set NN_DATA_DIR / --data-dir)"
    return _download(path, urls, MNIST_FILES[name], MNIST_SIZES[name], advice)


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
    remove_stale_leftovers(folder)
    if _verified(path, WEIGHTS_SHA256):
        return path
    url = os.environ.get("NN_WEIGHTS_URL") or WEIGHTS_URL
    advice = f"put the book's {WEIGHTS_NAME} in {folder} (or set NN_DATA_DIR / --data-dir, or pass --weights)"
    return _download(path, [url], WEIGHTS_SHA256, WEIGHTS_SIZE, advice)


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
    """True if ``path`` holds the expected bytes; False if it is absent or was just moved aside.

    Other processes may be fixing the same corrupt file at the same time: only the file that
    was hashed is moved aside, and one that another process moved first counts as absent.
    """
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as file:
            hashed = os.fstat(file.fileno())
            actual = hashlib.sha256(file.read()).hexdigest()
    except OSError as err:  # the user's data dir: no permission, an I/O error; one line, not a bug's traceback
        raise DataNotFoundError(f"{path}: cannot read it ({err.strerror or err})") from None
    if actual == sha256:
        return True
    if not is_writable(path.parent):  # a read-only data dir (CI's shared one): only the user can replace it
        raise DataCorruptedError(f"{path} fails its SHA-256 check (expected {sha256}, got {actual}) and "
                                 f"{path.parent} is read-only: replace the file by hand")
    aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
    try:
        now = os.stat(path)
        if (now.st_dev, now.st_ino) != (hashed.st_dev, hashed.st_ino):
            return _verified(path, sha256)  # another process put a new file there: judge that one
        os.replace(path, aside)
    except FileNotFoundError:  # another process moved it aside first, and fetches it again too
        return False
    except OSError as err:
        raise DataCorruptedError(f"{path} fails its SHA-256 check (expected {sha256}, got {actual}) and "
                                 f"cannot be moved aside ({_one_line(err)}): replace the file by hand") from None
    print(f"{path} fails its SHA-256 check (expected {sha256[:12]}..., got {actual[:12]}...); "
          f"moved it to {aside.name} and fetching it again", file=sys.stderr)
    return False


def _download(path, urls, sha256, size, advice):
    """Download ``path`` from the first of ``urls`` giving the ``size`` bytes of ``sha256``; each failure is one line."""
    created = _missing_folders(path.parent)  # pooch creates them before it downloads anything
    existing = created[-1].parent if created else path.parent
    if not is_writable(existing):  # checked where writing would start, before any folder is made
        raise DataNotFoundError(f"{path.name} is missing and cannot be saved in {existing} (read-only); {advice}")
    try:
        return _first_good_mirror(path, urls, sha256, size, advice)
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


def _first_good_mirror(path, urls, sha256, size, advice):
    """Try ``urls`` in order; ``path`` once one gives the ``sha256`` bytes, else DataNotFoundError."""
    import logging

    import pooch
    import requests
    from tqdm import tqdm

    pooch.get_logger().setLevel(logging.WARNING)  # our own lines say what happens
    timeout = download_timeout()
    for i, url in enumerate(urls):
        # leave=False: the bar is gone before the hash is checked, so the outcome is
        # told by one line of ours instead of a bar at 100% for a download that then fails.
        bar = tqdm(total=size, desc=path.name, unit="B", unit_scale=True, ncols=79, leave=False)
        try:
            pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=path.name, path=path.parent,
                           downloader=_capped_download(size, timeout, bar))
            print(f"downloaded {path} from {url} (SHA-256 verified)", file=sys.stderr)
            return path
        except _MirrorFailed as err:
            reason = str(err)
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


def download_timeout():
    """Seconds one file's download may take, from any one mirror: ``$NN_DOWNLOAD_TIMEOUT``, else :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get("NN_DOWNLOAD_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise NNError(f"NN_DOWNLOAD_TIMEOUT must be a positive number of seconds, got {text!r}")
    return seconds


class _MirrorFailed(Exception):
    """This mirror sent too much or took too long; the next one is tried."""


def _capped_download(size, timeout, bar):
    """A pooch downloader (``download(url, output_file, pooch)``) streaming through :func:`_stream`."""
    def download(url, output_file, pooch_instance):
        try:
            _stream(url, output_file, size, timeout, bar)
        finally:  # before the outcome's line, as pooch's own downloader does
            bar.close()
        # pooch's temporary file is 0600; the file it becomes is shared like any other new file
        os.chmod(output_file, new_file_mode())
    return download


def _stream(url, output_file, size, timeout, bar):
    """``url``'s body into ``output_file``; :class:`_MirrorFailed` past ``size`` bytes or ``timeout`` seconds.

    Each read returns whatever arrived, so a mirror trickling a byte at a time is still timed;
    requests' own timeout (:data:`READ_TIMEOUT_S`) bounds each read, and so the overshoot.
    """
    import requests

    deadline = time.monotonic() + timeout
    with requests.get(url, stream=True, timeout=min(READ_TIMEOUT_S, timeout)) as response:
        response.raise_for_status()
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > size:
            raise _MirrorFailed(f"it announces {int(declared):,} bytes; the file has {size:,}")
        received = 0
        with open(output_file, "wb") as file:
            while chunk := _read_some(response.raw):
                received += len(chunk)
                if received > size:
                    raise _MirrorFailed(f"it sent more than the file's {size:,} bytes")
                file.write(chunk)
                bar.update(len(chunk))
                if time.monotonic() > deadline:
                    raise _MirrorFailed(f"{received:,} of {size:,} bytes after {timeout:g} s "
                                        f"(NN_DOWNLOAD_TIMEOUT)")


def _read_some(raw):
    """Up to 64 KiB of the body, as soon as one read gets any; urllib3's errors as one-line reasons."""
    import urllib3

    try:
        return raw.read1(1 << 16, decode_content=True)
    except urllib3.exceptions.HTTPError as err:  # a body cut short, a read timing out
        raise _MirrorFailed(_one_line(err.args[0] if err.args else err)) from None


# What a killed run leaves, by name: atomic writes' ``<name>.<pid>.<random>.tmp``, the older cache
# writer's ``<name><random>.tmp`` and pooch's ``tmp<random>``; <name> is one of this project's files.
_OWN_NAME = r"(?:(?:t10k|train)-(?:images-idx3|labels-idx1)-ubyte(?:\.gz|\.[0-9a-f]{16}\.npy)|sample_weight\.pkl)"
_RANDOM = r"[a-z0-9_]{8}"  # tempfile's names
_LEFTOVER = re.compile(rf"{_OWN_NAME}(?:\.(?P<pid>\d+)\.{_RANDOM}|{_RANDOM})\.tmp|(?P<pooch>tmp{_RANDOM})")
_MAGIC = (b"\x1f\x8b", b"\x80")  # gzip, pickle: what a partial download of ours starts with


def remove_stale_leftovers(folder):
    """Delete the temporary files that killed runs left in ``folder``; returns their names.

    Only this project's names (:data:`_LEFTOVER`), and only once stale: the pid in the name
    is not running here, or (pooch's and the older writer's, whose names hold no pid) the file
    has not grown for longer than a download may take. A read-only folder is left alone.
    """
    try:
        if not is_writable(folder):
            return []
        entries = list(os.scandir(folder))
    except OSError:  # absent, or not a folder: nothing to clean
        return []
    stale_before = time.time() - download_timeout() - 2 * READ_TIMEOUT_S
    removed = []
    for entry in entries:
        match = _LEFTOVER.fullmatch(entry.name)
        try:
            if not match or not entry.is_file(follow_symlinks=False):
                continue
            if match["pid"] is not None and os.name == "posix":
                stale = not _running(int(match["pid"]))
            else:
                stale = entry.stat(follow_symlinks=False).st_mtime < stale_before
                if stale and match["pooch"]:  # "tmp" + 8 characters is common: ours start as our files do
                    with open(entry.path, "rb") as file:
                        stale = file.read(2).startswith(_MAGIC) or file.tell() == 0
            if stale:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:  # gone meanwhile (another run cleaned it), or not ours to remove
            continue
    return removed


def _running(pid):
    """Whether process ``pid`` exists on this machine (POSIX only: on Windows signal 0 is CTRL_C_EVENT)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    return True


def _reason(err):
    """A requests error in short: the HTTP status, else urllib3's innermost cause."""
    if err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason}"
    return _one_line(getattr(err.args[0], "reason", None) or err if err.args else err)


def _one_line(err):
    return " ".join(str(err).split())[:200]
