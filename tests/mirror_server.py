"""A local mirror for download tests: HTTP on 127.0.0.1 only, one URL prefix per way a mirror fails.

    with MirrorServer({"t10k-labels-idx1-ubyte.gz": data}) as server:
        server.url("503")  # -> "http://127.0.0.1:<port>/503/", which answers 503 for every file

Prefixes: ``good`` serves the file; ``403``, ``404``, ``503`` answer with that status; ``html`` answers
200 with an HTML error page; ``truncated`` announces the full length but sends half and hangs up;
``wrong`` sends one byte changed; ``endless`` sends the file, then zeros, with no length; ``oversized``
announces twice the length; ``trickle`` sends half, then a byte every ``interval`` seconds;
``slowheaders`` sends its status line and headers a byte every ``interval``; ``continue`` sends
``100 Continue`` answers forever; ``redirect`` redirects to itself forever, one hop every ``interval``;
``redirectbody`` redirects to ``good`` with an endless body; ``badlength`` sends the file with a
``Content-Length`` of ``²``; ``auth`` serves the file only to ``user:secret``. Every answer ends within
:data:`MAX_ANSWER_S` seconds or :data:`MAX_ANSWER_BYTES` bytes, so that a test of a broken client ends.
"""

import base64
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = (
    "good",
    "403",
    "404",
    "503",
    "html",
    "truncated",
    "wrong",
    "endless",
    "oversized",
    "trickle",
    "slowheaders",
    "continue",
    "redirect",
    "redirectbody",
    "badlength",
    "auth",
    "token",  # basic authentication with a user and no password: token@host
    "303",  # redirects to the good mirror with that status
    "307",
    "308",
)
SERVING = ("good", "redirectbody", "303", "307", "308")  # the behaviours that end with the file
MAX_ANSWER_S, MAX_ANSWER_BYTES = 30, 64 << 20
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in.</body></html>\n"


class MirrorServer:
    """Serves ``files`` (``{name: bytes}``) under every prefix of :data:`BEHAVIOURS`.

    ``requests`` lists the paths asked for, in order; ``sent`` the body bytes each answer wrote.
    """

    def __init__(self, files, interval=0.05):
        self.files, self.interval, self.requests, self.sent = dict(files), interval, [], []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                mirror._answer(self)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True
        )  # shutdown() waits up to this poll interval (0.5 s by default)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def url(self, behaviour, credentials=""):
        """Base URL of one misbehaving (or ``good``) mirror, with a trailing slash."""
        assert behaviour in BEHAVIOURS, behaviour
        return f"http://{credentials}127.0.0.1:{self._httpd.server_address[1]}/{behaviour}/"

    def _answer(self, handler):
        self.requests.append(handler.path)
        _, behaviour, name = (handler.path.split("?")[0].split("/", 2) + ["", ""])[:3]
        body = self.files.get(name)
        handler.close_connection = True
        if behaviour not in BEHAVIOURS or body is None or behaviour == "404":
            return handler.send_error(404)
        if behaviour in ("403", "503"):
            return handler.send_error(int(behaviour))
        login = {"auth": b"user:secret", "token": b"token:"}.get(behaviour)
        if (
            login
            and handler.headers.get("Authorization") != "Basic " + base64.b64encode(login).decode()
        ):
            return handler.send_error(401)
        if behaviour in ("303", "307", "308"):
            handler.send_response(int(behaviour))
            handler.send_header("Location", f"/good/{name}")
            handler.send_header("Content-Length", "0")
            return handler.end_headers()
        stop = time.monotonic() + MAX_ANSWER_S
        try:
            if behaviour in ("slowheaders", "continue", "redirect", "redirectbody"):
                return self._raw(handler, behaviour, name, body, stop)
            body = (
                HTML_PAGE
                if behaviour == "html"
                else body[:-1] + bytes([body[-1] ^ 0xFF])
                if behaviour == "wrong"
                else body
            )
            handler.send_response(200)
            handler.send_header(
                "Content-Type", "text/html" if behaviour == "html" else "application/octet-stream"
            )
            if behaviour != "endless":  # without a length, the body ends when the connection does
                length = {"oversized": str(2 * len(body)), "badlength": "\u00b2"}.get(
                    behaviour, str(len(body))
                )
                handler.send_header("Content-Length", length)
            handler.end_headers()
            self._send(handler, self._chunks(behaviour, body), stop)
        except OSError:  # the client gave up: that is what these mirrors test
            pass

    def _raw(self, handler, behaviour, name, body, stop):
        """The answers http.server cannot write: byte by byte, endless, or with a body after a redirect."""
        hop = int(handler.path.split("?")[1]) if "?" in handler.path else 0
        if behaviour == "slowheaders":
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            return self._send(
                handler, (head[i : i + 1] for i in range(len(head))), stop, pause=True
            )
        if behaviour == "continue":
            return self._send(
                handler, iter(lambda: b"HTTP/1.1 100 Continue\r\n\r\n", None), stop, pause=True
            )
        if behaviour == "redirect":
            time.sleep(self.interval)
            location = f"/redirect/{name}?{hop + 1}"
        else:
            location = f"/good/{name}"
        handler.wfile.write(
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\n".encode()
            + (b"\r\n" if behaviour == "redirect" else b"Content-Length: 1000000000\r\n\r\n")
        )
        if behaviour == "redirectbody":
            self._send(handler, iter(lambda: bytes(1 << 16), None), stop)

    def _send(self, handler, chunks, stop, pause=False):
        sent = 0
        for chunk in chunks:
            if sent >= MAX_ANSWER_BYTES or time.monotonic() > stop:
                break
            handler.wfile.write(chunk)
            handler.wfile.flush()
            sent += len(chunk)
            if pause:
                time.sleep(self.interval)
        self.sent.append(sent)

    def _chunks(self, behaviour, body):
        if behaviour == "truncated":
            yield body[: len(body) // 2]
        elif behaviour == "endless":
            yield body
            while True:
                yield bytes(1 << 16)
        elif behaviour == "trickle":
            yield body[: len(body) // 2]
            for i in range(len(body) // 2, len(body)):
                time.sleep(self.interval)
                yield body[i : i + 1]
        else:
            yield body


def refused_url():
    """A base URL on a 127.0.0.1 port that was free a moment ago: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
