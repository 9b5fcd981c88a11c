"""An upstream that echoes the bearer token it receives the way real encoders
write it, with Python's standard library as the independent encoder: JSON
(`json`, with PHP's `\\/`, .NET-style `\\uXXXX` for every character), percent
and form encoding (`urllib.parse`, either hex case, every byte), HTML/XML
character references (`html`, `html.entities`, `xml.sax.saxutils`), base64
and base64url with and without padding (`base64`).

GET /FORM/PLACE?seed=N answers with the encoded token in PLACE: json, text,
xml, html, form, gzip (a gzip-compressed text body), header, location (a
redirect whose target holds it), error (a redirect to a malformed URL, which
the host quotes in its error message). Bodies are sent chunked, cut at
random boundaries (from `seed`), each chunk flushed on its own.

Prints its port on the first line; exits when stdin closes."""

import base64
import gzip
import html
import html.entities
import json
import os
import random
import re
import socket
import sys
import threading
import urllib.parse
import xml.sax.saxutils
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# A character -> one of its HTML5 names (`&plus;`, `&sol;`, `&excl;`, ...).
NAMES = {}
for name, text in html.entities.html5.items():
    if name.endswith(";") and len(text) == 1:
        NAMES.setdefault(text, name)


def utf16_units(s):
    data = s.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def b64(data, alphabet, pad):
    out = (base64.b64encode if alphabet == "std" else base64.urlsafe_b64encode)(data).decode()
    return out if pad else out.rstrip("=")


FORMS = {
    "raw": lambda s: s,
    "json-ascii": lambda s: json.dumps(s)[1:-1],
    "json-php": lambda s: json.dumps(s).replace("/", "\\/")[1:-1],
    "json-all-upper": lambda s: escape_all(s, True),
    "json-all-lower": lambda s: escape_all(s, False),
    "percent": lambda s: urllib.parse.quote(s, safe=""),
    "percent-lower": lambda s: re.sub(
        "%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(s, safe="")
    ),
    "percent-every-byte": lambda s: "".join("%%%02x" % b for b in s.encode()),
    "form": urllib.parse.quote_plus,
    "html": lambda s: html.escape(s, quote=True),
    "html-named": lambda s: "".join("&" + NAMES[c] if c in NAMES else c for c in s),
    "html-decimal": lambda s: "".join("&#%d;" % ord(c) for c in s),
    "html-hex": lambda s: "".join("&#x%X;" % ord(c) for c in s),
    "xml": lambda s: xml.sax.saxutils.escape(s, {'"': "&quot;", "'": "&apos;"}),
    "base64": lambda s: b64(s.encode(), "std", True),
    "base64-nopad": lambda s: b64(s.encode(), "std", False),
    "base64url": lambda s: b64(s.encode(), "url", True),
    "base64url-nopad": lambda s: b64(s.encode(), "url", False),
    "base64-basic-pair": lambda s: b64(("user:" + s).encode(), "std", True),
    "base64-inside": lambda s: b64(b"\x01\x02" + s.encode() + b"!", "url", False),
    "json-all-of-percent": lambda s: escape_all(urllib.parse.quote(s, safe=""), True),
}


def escape_all(s, upper):
    return "".join(("\\u%04X" if upper else "\\u%04x") % u for u in utf16_units(s))


def dumps_all(obj, upper):
    """JSON with every character of every string (keys too) as `\\uXXXX`."""
    if isinstance(obj, str):
        return '"%s"' % escape_all(obj, upper)
    if isinstance(obj, dict):
        return "{%s}" % ", ".join("%s: %s" % (dumps_all(k, upper), dumps_all(v, upper)) for k, v in obj.items())
    if isinstance(obj, list):
        return "[%s]" % ", ".join(dumps_all(v, upper) for v in obj)
    return json.dumps(obj)


# JSON encoders writing a whole document: Python's default (non-ASCII as
# `\\uXXXX`, surrogate pairs), PHP's `\\/`, and every character escaped.
JSON_WRITERS = {
    "json-ascii": json.dumps,
    "json-php": lambda doc: json.dumps(doc).replace("/", "\\/"),
    "json-all-upper": lambda doc: dumps_all(doc, True),
    "json-all-lower": lambda doc: dumps_all(doc, False),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Each chunk goes out at once (Nagle would hold it for the client's
        # delayed ACK).
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if parts[0] == "landed":
            return self.send_body(200, "text/plain", b"landed", random.Random(0))
        form, place = parts
        seed = int(dict(urllib.parse.parse_qsl(url.query)).get("seed", "0"))
        token = self.headers.get("authorization", "").encode("latin-1").decode()
        token = token.removeprefix("Bearer ")
        encoded = FORMS[form](token)
        rng = random.Random(seed)
        if place == "json":
            if form.startswith("json-") and form in JSON_WRITERS:
                # The whole document as that JSON encoder writes it.
                doc = {"id": 912345678, "echo": token, token: 1, "nested": {"list": [token]}}
                text = JSON_WRITERS[form](doc)
            else:
                doc = {"id": 912345678, "echo": encoded, encoded: 1, "nested": {"list": [encoded]}}
                text = json.dumps(doc)
            self.send_body(200, "application/json", text.encode(), rng)
        elif place == "text":
            self.send_body(200, "text/plain", ("token=%s\n" % encoded).encode(), rng)
        elif place == "xml":
            body = '<r><t>%s</t><a v="%s"/></r>' % (encoded, encoded)
            self.send_body(200, "application/xml", body.encode(), rng)
        elif place == "html":
            body = '<p title="%s">%s</p>' % (encoded, encoded)
            self.send_body(200, "text/html", body.encode(), rng)
        elif place == "form":
            self.send_body(200, "application/x-www-form-urlencoded", ("a=1&t=%s" % encoded).encode(), rng)
        elif place == "gzip":
            self.send_body(200, "text/plain", gzip.compress(("t=%s" % encoded).encode()), rng, "gzip")
        elif place == "header":
            self.send_body(200, "text/plain", b"ok", rng, headers=[("x-echo", encoded)])
        elif place == "location":
            target = "/landed?t=" + encoded
            self.send_body(302, "text/plain", b"", rng, headers=[("location", target)])
        elif place == "error":
            target = "http://[::1/?t=" + encoded
            self.send_body(302, "text/plain", b"", rng, headers=[("location", target)])
        else:
            self.send_body(404, "text/plain", b"unknown place", rng)

    def send_body(self, status, content_type, body, rng, encoding=None, headers=()):
        self.send_response(status)
        self.send_header("content-type", content_type)
        if encoding:
            self.send_header("content-encoding", encoding)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        at = 0
        while at < len(body):
            size = rng.randint(1, 7)
            chunk = body[at : at + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            at += size
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
server.serve_forever()
