"""A test double for the host, so a plugin's calls run under plain
`python3 -m unittest`, without a component (as `courier_sdk::testing` does
for Rust plugins under `cargo test`).

A `MockHost` stands in for the host inside its `with` block: each request
a call sends must match an `Expect` given to `MockHost.expect`, which
answers it with its `Reply`; what was sent is kept (`MockHost.requests`).
A request that matches no expectation fails the test at once, naming the
request and why each remaining expectation did not match; an expectation
still unused when the block ends fails it too::

    from courier_sdk.testing import Expect, MockHost, Reply

    with MockHost() as host:
        host.expect(Expect.post("/v1/customers").connection("stripe")
                    .form([("email", "ada@example.test")])
                    .reply(Reply.json(200, {"id": "cus_1"})))
        self.assertEqual(app.create_customer({"email": "ada@example.test"}), {"id": "cus_1"})

The double answers as the plugin's code sees the host; it does not apply
the host's policy, credentials, limits or pagination (a paginated request
gets its `Reply`: the items of every page)."""

import json
import uuid

import courier_sdk
from courier_sdk import _standin

_t = courier_sdk._t
if _t is not _standin.types:
    raise ImportError("courier_sdk.testing stands in for the host outside a component only")

__all__ = ["Expect", "MockHost", "Reply", "SentRequest"]


def _case(value):
    """A variant case's WIT name: `Body_Json` -> `json`, `Body_None_` -> `none`."""
    name = type(value).__name__.split("_", 1)[1].rstrip("_")
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


class SentRequest:
    """A request as the plugin handed it to the host: `method` (`"GET"`),
    `url` as written, `query` and `headers` (lists of pairs), `body_kind`
    (`"none"`, `"json"`, `"form"`, `"text"`, ...) and `body` (its WIT
    value: JSON text, pairs, ...), `connection`, and `wit`, the whole WIT
    record (retry, pagination, idempotency key, timeout, cache)."""

    def __init__(self, wit):
        self.wit = wit
        self.method = wit.method.name
        self.url = wit.url
        self.query = list(wit.query)
        self.headers = list(wit.headers)
        self.body_kind = _case(wit.body)
        self.body = getattr(wit.body, "value", None)
        self.connection = wit.connection

    def header(self, name):
        """The first header named `name` (any case), or None."""
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def json(self):
        """The JSON body parsed, or None if the body is not JSON."""
        return json.loads(self.body) if self.body_kind == "json" else None

    def __repr__(self):
        return f"{self.method} {self.url} {self.wit!r}"


class Reply:
    """The host's answer to an expected request: a response, or a send
    error (`Reply.error`) as the host returns when it sends nothing."""

    def __init__(self, status):
        self.status, self.headers, self.content, self.failure = status, [], b"", None

    @classmethod
    def json(cls, status, value):
        """A JSON response (`content-type: application/json`)."""
        return cls(status).header("content-type", "application/json").body(
            courier_sdk._compact(value).encode("utf-8"))

    @classmethod
    def text(cls, status, text):
        """A text response (`content-type: text/plain; charset=utf-8`)."""
        return cls(status).header("content-type", "text/plain; charset=utf-8").body(
            text.encode("utf-8"))

    @classmethod
    def error(cls, kind, message=""):
        """The host sends nothing and returns the send error `kind` (its WIT
        name: `denied`, `connect`, `invalid-request`, ...) with `message`;
        `timeout` takes the phase's WIT name as `message` (`total`)."""
        reply = cls(0)
        name = "SendError_" + "".join(part.capitalize() for part in kind.split("-"))
        if kind == "timeout":
            message = _t.TimeoutPhase[message.upper().replace("-", "_")]
        reply.failure = getattr(_t, name)(message)
        return reply

    def header(self, name, value):
        """Adds a response header."""
        self.headers.append((name, value))
        return self

    def body(self, content):
        """The response body (bytes)."""
        self.content = bytes(content)
        return self

    def answer(self, request):
        """The WIT response to `request` (its URL is the final URL), or raises
        the send error."""
        if self.failure is not None:
            raise _standin.Err(self.failure)
        return _t.Response(status=self.status, headers=list(self.headers), body=self.content,
                           final_url=request.url)


class Expect:
    """A request the test expects, and the host's answer to it (`200` with
    no body unless `reply` says otherwise, once unless `times` says
    otherwise). Method and URL must be equal; every further check must hold."""

    def __init__(self, method, url):
        self.method, self.url = method.upper(), url
        self.checks, self.response, self.remaining = [], Reply(200), 1

    @classmethod
    def get(cls, url):
        return cls("GET", url)

    @classmethod
    def post(cls, url):
        return cls("POST", url)

    def query(self, name, value):
        """The request carries the query pair `name=value` (among others)."""
        return self.matching(f"query `{name}={value}`", lambda r: (name, value) in r.query)

    def query_exactly(self, pairs):
        """The request's query pairs are exactly these, in this order."""
        pairs = [tuple(p) for p in pairs]
        return self.matching(f"query exactly {pairs}", lambda r: r.query == pairs)

    def header(self, name, value):
        """The request has the header `name` (any case) with this value."""
        return self.matching(f"header `{name}: {value}`", lambda r: any(
            n.lower() == name.lower() and v == value for n, v in r.headers))

    def connection(self, name):
        """The request names this connection."""
        return self.matching(f"connection `{name}`", lambda r: r.connection == name)

    def json(self, value):
        """The body is JSON equal to `value`."""
        return self.matching(f"JSON body {courier_sdk._compact(value)}",
                             lambda r: r.body_kind == "json" and r.json() == value)

    def form(self, pairs):
        """The body is a form of exactly these pairs, in this order."""
        pairs = [tuple(p) for p in pairs]
        return self.matching(f"form body {pairs}",
                             lambda r: r.body_kind == "form" and list(r.body) == pairs)

    def matching(self, what, test):
        """Any other check on the `SentRequest`, described by `what` in failures."""
        self.checks.append((what, test))
        return self

    def reply(self, reply):
        """How the host answers."""
        self.response = reply
        return self

    def times(self, times):
        """Expects `times` such requests (each answered the same)."""
        self.remaining = times
        return self

    def mismatch(self, request):
        """Why `request` does not match, or None."""
        if request.method != self.method or request.url != self.url:
            return f"expected {self.method} {self.url}"
        failed = [what for what, test in self.checks if not test(request)]
        return f"{self}: not {', not '.join(failed)}" if failed else None

    def __str__(self):
        return " ".join([self.method, self.url] + [f"with {what}" for what, _ in self.checks])


class MockHost:
    """The host, stood in for inside a `with MockHost() as host:` block."""

    installed = None

    def __init__(self):
        self.expected, self.sent, self.bound, self.logs = [], [], [], []
        self.failure = None

    def __enter__(self):
        if MockHost.installed is not None:
            raise RuntimeError("a courier_sdk.testing.MockHost is already installed")
        MockHost.installed = self
        return self

    def __exit__(self, kind, error, traceback):
        MockHost.installed = None
        if kind is None:
            self.verify()
        elif self.failure is not None and not isinstance(error, AssertionError):
            # An unexpected request the plugin turned into its own failure.
            raise AssertionError(self.failure) from error

    def bind(self, connection):
        """Reports `connection` as bound to the step (`bound_connections`)."""
        self.bound.append(connection)
        return self

    def expect(self, expectation):
        """Expects a request; requests are matched against the expectations in
        the order given, skipping those used up."""
        self.expected.append(expectation)
        return self

    def requests(self):
        """Every `SentRequest` so far, in order."""
        return list(self.sent)

    def verify(self):
        """Fails if a request matched nothing or an expectation is not used up."""
        if self.failure is not None:
            raise AssertionError(self.failure)
        unused = [str(e) for e in self.expected if e.remaining > 0]
        if unused:
            raise AssertionError("expected requests that were never sent:\n  " +
                                 "\n  ".join(unused))

    # What `courier_sdk._standin` forwards: the WIT's outbound and log functions.

    def send(self, wit):
        request = SentRequest(wit)
        self.sent.append(request)
        waiting = [e for e in self.expected if e.remaining > 0]
        for expectation in waiting:
            if expectation.mismatch(request) is None:
                expectation.remaining -= 1
                return expectation.response.answer(request)
        why = "".join(f"\n  {e.mismatch(request)}" for e in waiting) or "\n  (none is left)"
        self.failure = f"unexpected request {request}; the expectations left:{why}"
        raise AssertionError(self.failure)

    def send_all(self, wits):
        results = []
        for wit in wits:
            try:
                results.append(_standin.Ok(self.send(wit)))
            except _standin.Err as e:
                results.append(e)
        return results

    def bound_connections(self):
        return list(self.bound)

    def new_idempotency_key(self):
        return str(uuid.uuid4())

    def log(self, level, message):
        self.logs.append((level.name.lower(), message))
