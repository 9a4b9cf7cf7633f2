"""A local mirror for download tests: HTTP on 127.0.0.1 only, one URL prefix per way a mirror fails.

    with MirrorServer({"t10k-labels-idx1-ubyte.gz": data}) as server:
        server.url("503")  # -> "http://127.0.0.1:<port>/503/", which answers 503 for every file

Prefixes: ``good`` serves the file; ``403``, ``404``, ``503`` answer with that status;
``html`` answers 200 with an HTML error page; ``truncated`` announces the full length
but sends half and hangs up; ``wrong`` sends the right length with one byte changed;
``endless`` sends the file, then zeros, with no length announced; ``oversized`` announces
twice the file's length; ``trickle`` sends the first half, then one byte every
``trickle_interval`` seconds. Every answer ends within :data:`MAX_ANSWER_S` seconds or
:data:`MAX_ANSWER_BYTES` bytes, whichever comes first, so that a test of a broken client ends.
:func:`refused_url` is a base URL where nothing listens.
"""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = ("good", "403", "404", "503", "html", "truncated", "wrong", "endless", "oversized", "trickle")
MAX_ANSWER_S, MAX_ANSWER_BYTES = 30, 64 << 20
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please log in.</body></html>\n"


class MirrorServer:
    """Serves ``files`` (``{name: bytes}``) under every prefix of :data:`BEHAVIOURS`.

    ``requests`` lists the paths asked for, in order, so tests can see which mirrors were hit;
    ``sent`` the body bytes each answer wrote.
    """

    def __init__(self, files, trickle_interval=0.05):
        self.files = dict(files)
        self.trickle_interval = trickle_interval
        self.requests = []
        self.sent = []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                mirror._answer(self)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def url(self, behaviour):
        """Base URL of one misbehaving (or ``good``) mirror, with a trailing slash."""
        assert behaviour in BEHAVIOURS, behaviour
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{behaviour}/"

    def _answer(self, handler):
        self.requests.append(handler.path)
        _, behaviour, name = (handler.path.split("/", 2) + ["", ""])[:3]
        body = self.files.get(name)
        if behaviour not in BEHAVIOURS or body is None or behaviour == "404":
            return handler.send_error(404)
        if behaviour in ("403", "503"):
            return handler.send_error(int(behaviour))
        if behaviour == "html":
            body = HTML_PAGE
        if behaviour == "wrong":
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html" if behaviour == "html" else "application/octet-stream")
        if behaviour != "endless":  # without a length, the body ends when the connection does
            handler.send_header("Content-Length", str(len(body) * (2 if behaviour == "oversized" else 1)))
        handler.end_headers()
        handler.close_connection = True
        sent, stop = 0, time.monotonic() + MAX_ANSWER_S
        try:
            for chunk in self._chunks(behaviour, body):
                if sent >= MAX_ANSWER_BYTES or time.monotonic() > stop:
                    break
                handler.wfile.write(chunk)
                handler.wfile.flush()
                sent += len(chunk)
        except OSError:  # the client gave up: that is what these mirrors test
            pass
        self.sent.append(sent)

    def _chunks(self, behaviour, body):
        """The body as sent, in pieces."""
        if behaviour == "truncated":
            yield body[:len(body) // 2]
        elif behaviour == "endless":
            yield body
            while True:
                yield bytes(1 << 16)
        elif behaviour == "trickle":
            yield body[:len(body) // 2]
            for i in range(len(body) // 2, len(body)):
                time.sleep(self.trickle_interval)
                yield body[i:i + 1]
        else:
            yield body


def refused_url():
    """A base URL on a 127.0.0.1 port that was free a moment ago: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"
