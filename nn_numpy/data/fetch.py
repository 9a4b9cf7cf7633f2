"""The data directory, and SHA-256-verified fetches of MNIST and the book's weights.

:func:`fetch` gives the verified bytes of a pinned file: the file in the data dir is read once, its size
checked before and its hash on the very bytes returned. An absent file is downloaded into memory, verified,
then written atomically; one that fails is moved aside as ``NAME.corrupt-<time>-<random>`` and fetched
again. Only regular files are read or replaced. A mirror gets ``$NN_DOWNLOAD_TIMEOUT`` seconds for the
whole request, headers and redirects included.
"""

import base64
import hashlib
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from ..errors import DataCorruptedError, DataNotFoundError, NNError
from .files import atomic_write, is_writable, open_regular

# In the data dir: (size, SHA-256). torchvision pins the same MNIST files by MD5.
FILES = {
    "mnist/train-images-idx3-ubyte.gz": (
        9_912_422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "mnist/train-labels-idx1-ubyte.gz": (
        28_881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "mnist/t10k-images-idx3-ubyte.gz": (
        1_648_877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "mnist/t10k-labels-idx1-ubyte.gz": (
        4_542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
    "sample_weight.pkl": (
        181_853,
        "b7f55a27988ba34c3777b0f1bbd464817c8a4db855723e6ff26f703501917a13",
    ),
}
WEIGHTS = "sample_weight.pkl"
TEST_SET = ("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz")
TRAIN_SET = ("mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz")
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
WEIGHTS_URL = (
    "https://github.com/oreilly-japan/deep-learning-from-scratch/raw/master/ch03/sample_weight.pkl"
)
DEFAULT_TIMEOUT_S, READ_TIMEOUT_S, MAX_REDIRECTS = 900, 30, 5  # 900 s: 9.9 MB at 128 kbit/s


def resolve_data_dir(data_dir=None):
    """``data_dir``, else ``$NN_DATA_DIR``, else the per-user cache ``dlfs-ch3``: a folder, or nothing yet."""
    data_dir = data_dir or os.environ.get("NN_DATA_DIR") or None
    if data_dir is None:
        try:
            import platformdirs

            data_dir = platformdirs.user_cache_dir("dlfs-ch3")
        except (RuntimeError, KeyError) as err:  # HOME unset and no passwd entry (docker --user)
            raise NNError(
                f"cannot find a home folder for the data dir ({one_line(err)}): "
                "pass --data-dir or set NN_DATA_DIR"
            ) from None
    text = os.fspath(data_dir)
    path = Path(os.path.expanduser(text))
    if str(path).startswith("~"):
        raise NNError(f"data dir {text}: cannot expand {text.split(os.sep)[0]} (no such user)")
    try:
        if not os.path.isdir(path) and os.stat(path):
            raise NNError(f"data dir {path} is not a folder")
    except FileNotFoundError:
        pass  # made when a file is downloaded into it
    except OSError as err:  # a symlink loop, a name too long
        raise NNError(f"data dir {path}: {err.strerror}") from None
    return path


def urls(name):
    """Where ``name`` is downloaded from: ``$NN_MNIST_MIRRORS`` (comma-separated) or ``$NN_WEIGHTS_URL``."""
    if name == WEIGHTS:
        return [os.environ.get("NN_WEIGHTS_URL") or WEIGHTS_URL]
    bases = [
        u.strip() for u in os.environ.get("NN_MNIST_MIRRORS", "").split(",") if u.strip()
    ] or MNIST_MIRRORS
    return [base.rstrip("/") + "/" + Path(name).name for base in bases]


def download_timeout():
    text = os.environ.get("NN_DOWNLOAD_TIMEOUT", "").strip()
    try:
        seconds = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise NNError(f"NN_DOWNLOAD_TIMEOUT must be a positive number of seconds, got {text!r}")
    return seconds


def fetch(name, data_dir=None):
    """The verified bytes of the pinned file ``name`` (a key of :data:`FILES`), downloaded if absent."""
    size, sha256 = FILES[name]
    path = resolve_data_dir(data_dir) / name
    remove_stale_leftovers(path.parent)
    data = _read_verified(path, size, sha256)
    return data if data is not None else _download(path, name, size, sha256)


def gather(*loads, data_dir=None):
    """Each ``load()``'s result; the files absent from all of them are named together in one error."""
    results, missing, reasons = [], [], []
    for load in loads:
        try:
            results.append(load())
        except DataNotFoundError as err:
            if not err.missing:
                raise
            missing += err.missing
            reasons.append(err.reasons)
    if missing:
        folder = resolve_data_dir(data_dir)
        existing = next(p for p in (folder, *folder.parents) if os.path.lexists(p))
        if not is_writable(existing):  # nothing was downloaded: there was nowhere to save it
            made = "" if existing == folder else f" cannot be made: {existing} is read-only"
            raise DataNotFoundError(
                f"{folder} lacks {', '.join(missing)} and{made or ' is read-only'}, so nothing was "
                "downloaded: point --data-dir / NN_DATA_DIR at a folder you can write, or at one "
                "holding them (README: The data directory)",
                missing,
            )
        reasons = "; ".join(dict.fromkeys(r for r in reasons if r))
        raise DataNotFoundError(
            f"{folder} lacks {', '.join(missing)}, which could not be downloaded"
            + (f" ({reasons})" if reasons else "")
            + ": run `dlfs-ch3 "
            f"fetch-data --data-dir {folder}` where there is network, or copy them there (README: "
            "The data directory), or point --data-dir / NN_DATA_DIR at a folder holding them",
            missing,
        )
    return results


def _read_verified(path, size, sha256):
    """The file's bytes if they are the pinned ones; None if it is absent or was just moved aside."""
    try:
        file = open_regular(path)
    except FileNotFoundError:
        return None
    except OSError as err:  # a FIFO, /dev/zero, a folder, no permission: never read, never replaced
        raise NNError(
            f"{path}: cannot read it ({err.strerror or err}): replace it with the file by hand"
        ) from None
    with file:
        read = os.fstat(file.fileno())
        data = file.read(size + 1) if read.st_size == size else b""
    if len(data) == size and hashlib.sha256(data).hexdigest() == sha256:
        return data
    why = (
        f"fails its SHA-256 check (expected {sha256}, got {hashlib.sha256(data).hexdigest()})"
        if read.st_size == size
        else f"has {read.st_size:,} bytes, not {size:,}"
    )
    if not is_writable(path.parent):
        raise DataCorruptedError(
            f"{path} {why} and {path.parent} is read-only: replace the file by hand"
        )
    try:
        now = os.stat(path)
        if (now.st_dev, now.st_ino) != (read.st_dev, read.st_ino):
            return _read_verified(
                path, size, sha256
            )  # another process put a new file there: judge that one
        fd, aside = tempfile.mkstemp(
            prefix=f"{path.name}.corrupt-{int(time.time())}-", dir=path.parent
        )
        os.close(fd)  # the name is reserved: no earlier file set aside is ever replaced
        try:
            os.replace(path, aside)
        except BaseException:
            os.unlink(aside)
            raise
    except FileNotFoundError:  # another process moved it aside first
        return None
    except OSError as err:
        raise DataCorruptedError(
            f"{path} {why} and cannot be moved aside ({err.strerror}): replace the file by hand"
        ) from None
    print(f"{path} {why}; moved it to {Path(aside).name} and fetching it again", file=sys.stderr)
    return None


def _download(path, name, size, sha256):
    """The bytes of the first mirror giving the ``size`` bytes of ``sha256``, saved at ``path``."""
    mirrors, created, folder = urls(name), [], path.parent
    advice = (
        f"put the book's {WEIGHTS} in {path.parent} (or set NN_DATA_DIR / --data-dir, or pass --weights)"
        if name == WEIGHTS
        else f"put the MNIST files {', '.join(Path(n).name for n in TRAIN_SET + TEST_SET)} "
        f"in {path.parent} (or set NN_DATA_DIR / --data-dir)"
    )
    while not os.path.lexists(folder) and folder != folder.parent:
        created.append(folder)  # the folders this download makes, deepest first
        folder = folder.parent
    if not is_writable(folder):
        raise DataNotFoundError(
            f"{path.name} is missing and cannot be saved in {folder} (read-only); {advice}", [name]
        )
    timeout, failed = download_timeout(), []
    for i, url in enumerate(mirrors):
        try:
            data = _get(url, size, timeout, path.name)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise _MirrorFailed(
                    "the bytes fail the SHA-256 check (an error page or a damaged copy?)"
                )
        except _MirrorFailed as err:
            failed.append((url, str(err)))
            continue
        for (
            failed_url,
            why,
        ) in failed:  # said once a mirror served: when none does, the error says it
            print(f"mirror {redact(failed_url)} failed: {why}; trying the next", file=sys.stderr)
        try:
            os.makedirs(path.parent, exist_ok=True)
            with atomic_write(
                path, what=f"save the downloaded {path.name} in {path.parent}"
            ) as file:
                file.write(data)
        except BaseException as err:
            for made in created:
                try:
                    os.rmdir(made)
                except OSError:  # not empty after all, or never made
                    pass
            if isinstance(err, OSError):
                raise NNError(
                    f"cannot save the downloaded {path.name} in {path.parent}: {err.strerror}"
                ) from None
            raise
        print(f"downloaded {path} from {redact(url)} (SHA-256 verified)", file=sys.stderr)
        return data
    reasons = "; ".join(dict.fromkeys(why for _, why in failed))  # each reason once
    raise DataNotFoundError(
        f"{path.name} is missing and could not be downloaded ({len(mirrors)} URL"
        f"{'s' * (len(mirrors) > 1)} tried: {reasons}); {advice}",
        [name],
        reasons,
    )


class _MirrorFailed(Exception):
    """This mirror did not give the file; the next one is tried."""


def _get(url, size, timeout, label):
    """``url``'s body, at most ``size`` bytes, within ``timeout`` seconds for the whole request.

    The request runs in a thread the deadline can abandon: a mirror stalling anywhere (DNS, headers, endless
    ``100 Continue``, redirects, a trickling body) costs the deadline, not more. At the deadline the socket
    is shut down, which ends the thread's read; nothing of it was written to disk.
    """
    state, outcome = {"received": 0, "conn": None, "cancelled": False}, []
    worker = threading.Thread(
        target=lambda: outcome.append(_attempt(url, size, state)), daemon=True
    )
    deadline, bar, late = time.monotonic() + timeout, None, True
    worker.start()
    try:
        while worker.is_alive() and time.monotonic() < deadline:
            worker.join(min(0.1, max(deadline - time.monotonic(), 0)))
            if bar is None and state["received"]:
                from tqdm import tqdm  # only for a body that arrives: a failing mirror draws no bar

                bar = tqdm(
                    total=size,
                    desc=label,
                    unit="B",
                    unit_scale=True,
                    ncols=79,
                    leave=False,
                    delay=0.5,
                )
            if bar is not None:
                bar.update(state["received"] - bar.n)
        late = worker.is_alive()
    finally:
        if bar is not None:
            bar.close()
        if worker.is_alive():
            import socket

            state["cancelled"] = True
            try:  # the plain socket's shutdown, not SSLSocket's, which would race the reading thread
                socket.socket.shutdown(state["conn"].sock, socket.SHUT_RDWR)
            except (AttributeError, TypeError, OSError):  # not connected yet
                pass
    if late:
        raise _MirrorFailed(
            f"{state['received']:,} of {size:,} bytes after {timeout:g} s (NN_DOWNLOAD_TIMEOUT)"
        )
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _attempt(url, size, state):
    """:func:`_request`'s bytes, or why this mirror failed as :class:`_MirrorFailed`."""
    import http.client

    try:
        return _request(url, size, state)
    except _MirrorFailed as err:
        return err
    except (
        OSError,
        http.client.HTTPException,
        ValueError,
    ) as err:  # refused, reset, TLS, a bad status line
        return _MirrorFailed(one_line(getattr(err, "strerror", None) or err or type(err).__name__))
    except BaseException as err:  # a bug: the main thread raises it
        return err


def _request(url, size, state):
    import http.client
    import ssl

    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise _MirrorFailed(f"not an http or https URL ({parts.scheme or 'no scheme'})")
        conn = state["conn"] = (
            http.client.HTTPSConnection(
                parts.hostname,
                parts.port,
                timeout=READ_TIMEOUT_S,
                context=ssl.create_default_context(),
            )
            if parts.scheme == "https"
            else http.client.HTTPConnection(parts.hostname, parts.port, timeout=READ_TIMEOUT_S)
        )
        headers = {"User-Agent": "dlfs-ch3", "Accept-Encoding": "identity"}
        if (
            parts.username is not None
        ):  # user:password@ in the URL: basic authentication, never printed
            login = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
        try:
            if state["cancelled"]:
                return b""
            conn.request(
                "GET",
                (parts.path or "/") + ("?" + parts.query if parts.query else ""),
                headers=headers,
            )
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                url = urllib.parse.urljoin(
                    url, response.getheader("Location")
                )  # its body is never read
                continue
            if response.status != 200:
                raise _MirrorFailed(f"HTTP {response.status} {response.reason}")
            declared = response.getheader("Content-Length")
            if declared is not None and not (declared.isascii() and declared.strip().isdigit()):
                raise _MirrorFailed(f"it announces an invalid length, {declared[:20]!r}")
            if declared is not None and int(declared) > size:
                raise _MirrorFailed(f"it announces {int(declared):,} bytes; the file has {size:,}")
            body = bytearray()
            while not state["cancelled"] and (chunk := response.read1(1 << 16)):
                body += chunk
                if len(body) > size:
                    raise _MirrorFailed(f"it sent more than the file's {size:,} bytes")
                state["received"] = len(body)
            if response.length:  # read1 ends quietly where the connection closed early
                raise _MirrorFailed(
                    f"the body ended after {len(body):,} of the {int(declared):,} bytes announced"
                )
            return bytes(body)
        finally:
            conn.close()
    raise _MirrorFailed(f"more than {MAX_REDIRECTS} redirects")


def redact(url):
    """``url`` with any ``user:password@`` shown as ``***@``."""
    return re.sub(r"(?<=://)[^/@]*@", "***@", url)


# A killed run's atomic writes (files.atomic_write) leave <name>.<pid>.<random>.tmp; <name> is one of ours.
_LEFTOVER = re.compile(
    r"(?:(?:t10k|train)-(?:images-idx3|labels-idx1)-ubyte(?:\.gz|\.[0-9a-f]{16}\.npy)"
    r"|sample_weight\.pkl|exact-[0-9a-f]{16}-[0-9a-f]{16}\.npy)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp"
)


FRESH_S = 60  # a leftover this young may be a live write from a pid not visible here (a container)


def remove_stale_leftovers(folder):
    """Delete what killed runs of this project left in ``folder``, by name, once their pid is gone
    and they are more than a minute old; their names.

    A read-only folder is left alone, and nothing here ever fails a run.
    """
    removed = []
    try:
        if is_writable(folder):
            for entry in os.scandir(folder):
                match = _LEFTOVER.fullmatch(entry.name)
                if (
                    match
                    and entry.is_file(follow_symlinks=False)
                    and time.time() - entry.stat(follow_symlinks=False).st_mtime > FRESH_S
                    and not _running(int(match["pid"]))
                ):
                    os.unlink(entry.path)
                    removed.append(entry.name)
    except (
        Exception
    ):  # absent, gone meanwhile, not ours to remove: a courtesy must never fail a run
        pass
    return removed


def _running(pid):
    """Whether ``pid`` may be a live process here; no pid is ever above 2**22 (Linux's PID_MAX_LIMIT)."""
    if os.name != "posix":
        return True  # signal 0 would be CTRL_C_EVENT on Windows: never sweep there
    if not 0 < pid <= 2**22:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    return True


def one_line(err):
    return " ".join(str(err).split())[:200]
