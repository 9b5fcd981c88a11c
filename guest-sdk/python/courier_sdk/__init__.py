"""Courier's Python guest SDK: the same shape as the Rust SDK (`Plugin`,
`Connection`, `Call`, `Request`, typed `StepError`s) over the WIT bindings
that componentize-py generates from `wit/` (the `wit_world` package).

A plugin module builds a `Plugin` and exports it::

    from courier_sdk import Plugin, Call, Request, export

    def ping(input):
        return Request.get(input["url"]).send().json()

    Integration = export(Plugin("ping", "0.1.0").call(Call.data("ping", ping)))

The host validates each call's input against its schema before the handler
runs; the handler gets the parsed JSON and returns a JSON-serialisable value
or raises a `StepError`.

Outside a component (under `python3 -m unittest`) the SDK imports without
the bindings, and `courier_sdk.testing.MockHost` stands in for the host.
"""

import json

try:
    from componentize_py_types import Err, Ok
    from wit_world.imports import log as _log
    from wit_world.imports import outbound as _outbound
    from wit_world.imports import types as _t
except ImportError:  # natively, outside a component: `courier_sdk.testing` is the host
    from courier_sdk._standin import Err, Ok
    from courier_sdk._standin import log as _log
    from courier_sdk._standin import outbound as _outbound
    from courier_sdk._standin import types as _t

__all__ = [
    "Auth", "Call", "Connection", "Failed", "FormPart", "HttpError", "InvalidInput", "Jwt",
    "OAuth2", "Pagination", "Plugin", "Request", "Response", "RetryPolicy", "SecretPlacement",
    "SendFailed", "StepError",
    "bound_connections", "export", "log", "new_idempotency_key", "send_all",
]


def _millis(seconds):
    """Seconds as the WIT's u32 milliseconds (capped)."""
    return min(int(seconds * 1000), 2**32 - 1)


def _compact(value):
    """JSON text as serde_json writes it: no spaces, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- errors -----------------------------------------------------------------

class StepError(Exception):
    """A step's failure, as the host reports it (its outcome and error kind)."""

    def to_wit(self):
        raise NotImplementedError


class InvalidInput(StepError):
    """The input is well-formed JSON but makes no sense (outcome invalid-input)."""

    def to_wit(self):
        return _t.StepError_InvalidInput(str(self))


class HttpError(StepError):
    """The upstream answered with a failure status (outcome http-error);
    `output` (any JSON value) is still returned as the step's output."""

    def __init__(self, status, message, output=None):
        super().__init__(message)
        self.status, self.message, self.output = status, message, output

    def to_wit(self):
        output = None if self.output is None else _compact(self.output)
        return _t.StepError_Http(_t.HttpFailure(status=self.status, message=self.message, output=output))


# How the Rust SDK writes each `send-error` case, by WIT name.
_SEND_KINDS = {"dns": "DNS", "tls": "TLS", "too-large": "too large",
               "invalid-request": "invalid request", "circuit-open": "circuit open"}
_PHASES = {"TLS_HANDSHAKE": "TLS handshake", "FIRST_BYTE": "first byte",
           "STEP_DEADLINE": "step deadline"}


class SendFailed(StepError):
    """The host could not send a request; `reason` is the WIT `send-error`,
    `kind` its case's WIT name (denied, timeout, invalid-request, ...). The
    message reads as the Rust SDK's (`denied: ...`, `timed out (total)`)."""

    def __init__(self, reason):
        self.reason = reason
        name = type(reason).__name__.removeprefix("SendError_")
        self.kind = "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")
        if self.kind == "timeout":
            phase = reason.value.name
            message = f"timed out ({_PHASES.get(phase, phase.lower())})"
        else:
            message = f"{_SEND_KINDS.get(self.kind, self.kind)}: {reason.value}"
        super().__init__(message)

    def to_wit(self):
        return _t.StepError_Send(self.reason)


class Failed(StepError):
    """Any other failure of the plugin's own logic (outcome error)."""

    def to_wit(self):
        return _t.StepError_Failed(str(self))


# --- requests ---------------------------------------------------------------

_METHODS = {m.name: m for m in _t.Method}


class Response:
    """An upstream's answer: status, headers (pairs, as sent), body bytes."""

    def __init__(self, wit):
        self.status = wit.status
        self.headers = list(wit.headers)
        self.body = bytes(wit.body)
        self.final_url = wit.final_url

    def header(self, name):
        """The first value of header `name` (any case), or None."""
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)

    def is_success(self):
        return 200 <= self.status < 300

    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise Failed(f"the response body is not JSON: {e}") from None

    def error_for_status(self):
        """The response itself if its status is 2xx, else raises `HttpError`
        without output."""
        if not self.is_success():
            raise HttpError(self.status, f"upstream answered {self.status}")
        return self


class FormPart:
    """One part of a `multipart/form-data` body: a text field, or a file
    when it has a file name."""

    def __init__(self, name, data):
        self._wit = _t.FormPart(name=name, filename=None, content_type=None, data=bytes(data))

    @classmethod
    def text(cls, name, value):
        """A text field."""
        return cls(name, value.encode("utf-8"))

    @classmethod
    def file(cls, name, filename, data):
        """A file part (`application/octet-stream` unless `content_type` says otherwise)."""
        return cls(name, data).filename(filename)

    def filename(self, filename):
        """Sends the part as a file named `filename`."""
        self._wit.filename = filename
        return self

    def content_type(self, content_type):
        """Sets the part's content type."""
        self._wit.content_type = content_type
        return self


class RetryPolicy:
    """How the host retries a request that failed in a retryable way (the
    WIT `retry-policy`: a listed status, or a failed exchange; after the
    bytes may have reached the server only a safe method or a request with
    an idempotency key)."""

    def __init__(self, max_attempts):
        self._wit = _t.RetryPolicy(max_attempts=max_attempts, initial_backoff_ms=200,
                                   max_backoff_ms=5_000, retry_on_status=[429, 502, 503, 504])

    @classmethod
    def attempts(cls, max_attempts):
        """Up to `max_attempts` attempts in all (the first included), with a
        backoff from 0.2 s up to 5 s, retrying statuses 429, 502, 503 and 504."""
        return cls(max_attempts)

    def backoff(self, initial, max):
        """The first delay in seconds (doubled each time, with jitter) and the longest one."""
        self._wit.initial_backoff_ms, self._wit.max_backoff_ms = _millis(initial), _millis(max)
        return self

    def on_status(self, statuses):
        """The response statuses that are retried."""
        self._wit.retry_on_status = list(statuses)
        return self


class Pagination:
    """How the host follows an API's pages (the WIT `pagination`): it sends
    page after page and answers with one response whose body is the JSON
    array of every page's items; its `courier-pagination` header says why
    paging ended."""

    def __init__(self, style):
        self._wit = _t.Pagination(style=style, items_path="", limit_param=None,
                                  page_size=None, max_pages=None)

    @classmethod
    def cursor(cls, path, param):
        """The next cursor at `path` in each page's JSON, sent in the query
        parameter `param`."""
        return cls(_t.PageStyle_Cursor(_t.CursorPages(path=path, param=param)))

    @classmethod
    def page(cls, param):
        """Numbered pages from 1, sent in the query parameter `param`."""
        return cls(_t.PageStyle_Page(param))

    @classmethod
    def offset(cls, param):
        """Item offsets from 0, sent in the query parameter `param`."""
        return cls(_t.PageStyle_Offset(param))

    @classmethod
    def link(cls):
        """The `Link` response header's `rel="next"` URL."""
        return cls(_t.PageStyle_Link())

    def items(self, path):
        """The path to the items array in each page's JSON (`data`, `result.items`)."""
        self._wit.items_path = path
        return self

    def page_size(self, param, size):
        """Sends `size` in the query parameter `param` (`limit`, `per_page`);
        with numbered pages and offsets a shorter page is the last (`param`
        None: the size only ends paging, it is not sent)."""
        self._wit.limit_param, self._wit.page_size = param, size
        return self

    def max_pages(self, pages):
        """At most `pages` pages (the host's own cap applies as well)."""
        self._wit.max_pages = pages
        return self


class Request:
    """An outbound request, built step by step and sent by the host, which
    adds credentials, checks policy and enforces limits."""

    def __init__(self, method, url):
        found = _METHODS.get(method.upper())
        if found is None:
            raise InvalidInput(f"method: unsupported HTTP method `{method}`")
        self._wit = _t.Request(
            method=found, url=url, query=[], headers=[], body=_t.Body_None_(),
            connection=None, timeout_ms=None, follow_redirects=True, retry=None,
            idempotency_key=None, pagination=None, cache_ttl_ms=None,
        )

    @classmethod
    def get(cls, url):
        return cls("GET", url)

    @classmethod
    def post(cls, url):
        return cls("POST", url)

    @classmethod
    def put(cls, url):
        return cls("PUT", url)

    @classmethod
    def patch(cls, url):
        return cls("PATCH", url)

    @classmethod
    def delete(cls, url):
        return cls("DELETE", url)

    def query(self, name, value):
        self._wit.query.append((name, str(value)))
        return self

    def header(self, name, value):
        self._wit.headers.append((name, value))
        return self

    def json(self, value):
        """A JSON body (any JSON-serialisable value)."""
        self._wit.body = _t.Body_Json(_compact(value))
        return self

    def form(self, pairs):
        """An `application/x-www-form-urlencoded` body from (name, value) pairs."""
        self._wit.body = _t.Body_Form([(n, str(v)) for n, v in pairs])
        return self

    def text(self, text):
        self._wit.body = _t.Body_Text(text)
        return self

    def xml(self, xml):
        self._wit.body = _t.Body_Xml(xml)
        return self

    def bytes(self, content_type, data):
        self._wit.body = _t.Body_Bytes(_t.RawBody(content_type=content_type, data=bytes(data)))
        return self

    def multipart(self, parts):
        """A `multipart/form-data` body of `FormPart`s."""
        self._wit.body = _t.Body_Multipart([p._wit for p in parts])
        return self

    def graphql(self, query, variables=None, operation_name=None):
        """A GraphQL operation, sent as a JSON POST body; `variables` must be
        a JSON object (a dict)."""
        variables = None if variables is None else _compact(variables)
        self._wit.body = _t.Body_Graphql(_t.GraphqlRequest(
            query=query, variables=variables, operation_name=operation_name))
        return self

    def connection(self, name):
        """Send on the plugin's connection `name` (base URL, credentials)."""
        self._wit.connection = name
        return self

    def timeout(self, seconds):
        if not seconds > 0:
            raise InvalidInput("timeout: expected a positive number of seconds")
        self._wit.timeout_ms = min(int(seconds * 1000) or 1, 2**32 - 1)
        return self

    def follow_redirects(self, follow):
        self._wit.follow_redirects = bool(follow)
        return self

    def retry(self, policy):
        """Retries on failure as the `RetryPolicy` says; the host waits as the
        upstream's `Retry-After` or rate-limit headers say, else with
        jittered exponential backoff, never past the step deadline."""
        self._wit.retry = policy._wit
        return self

    def idempotency_key(self, key):
        """Sent as `Idempotency-Key`, the same on every attempt; makes a POST
        or PATCH retryable after its bytes may have reached the server."""
        self._wit.idempotency_key = key
        return self

    def generated_idempotency_key(self):
        """Sends a fresh key from the host (`new_idempotency_key`)."""
        return self.idempotency_key(new_idempotency_key())

    def paginate(self, pagination):
        """Follows the API's pages as the `Pagination` says."""
        self._wit.pagination = pagination._wit
        return self

    def cache(self, seconds):
        """Lets the host answer this GET or HEAD from its response cache for
        up to `seconds`."""
        self._wit.cache_ttl_ms = _millis(seconds)
        return self

    def send(self):
        """Sends through the host; raises `SendFailed` when it cannot. A
        non-2xx status is a `Response`, not an error."""
        try:
            return Response(_outbound.send(self._wit))
        except Err as e:
            raise SendFailed(e.value) from None


def send_all(requests):
    """Sends the `Request`s concurrently (within the step's limit) and returns
    one result per request, in order: a `Response`, or the `SendFailed` (not
    raised) for a request the host could not send. One failure does not
    cancel the others."""
    return [Response(r.value) if isinstance(r, Ok) else SendFailed(r.value)
            for r in _outbound.send_all([r._wit for r in requests])]


def new_idempotency_key():
    """A fresh idempotency key from the host: a random version 4 UUID."""
    return _outbound.new_idempotency_key()


def bound_connections():
    """Names of the plugin's connections the running step has bound."""
    return list(_outbound.bound_connections())


def log(level, message):
    """Writes to the step's log; `level` is trace, debug, info, warn or error."""
    _log.log(_log.Level[level.upper()], message)


# --- the manifest -----------------------------------------------------------

class Auth:
    """How a connection authenticates (the operator holds the secrets, the
    plugin never sees them): the constants, or a scheme from a classmethod."""

    NONE = _t.AuthScheme_None_()
    OPERATOR_DEFINED = _t.AuthScheme_OperatorDefined()
    BEARER = _t.AuthScheme_Bearer()
    BASIC = _t.AuthScheme_Basic()
    CLIENT_CERTIFICATE = _t.AuthScheme_ClientCertificate()

    @staticmethod
    def api_key_header(name):
        """An API key (secret `key`) in the header `name`."""
        return _t.AuthScheme_ApiKey(_t.ApiKeyScheme(location=_t.KeyLocation.HEADER, name=name))

    @staticmethod
    def api_key_query(name):
        """An API key (secret `key`) in the query parameter `name`."""
        return _t.AuthScheme_ApiKey(_t.ApiKeyScheme(location=_t.KeyLocation.QUERY, name=name))

    @staticmethod
    def custom(placements):
        """The operator's secrets placed by the `SecretPlacement`s."""
        return _t.AuthScheme_Custom([p._wit for p in placements])

    @staticmethod
    def oauth2_client_credentials(oauth2=None):
        """The OAuth 2 client credentials grant (`OAuth2`, defaults when None)."""
        return _t.AuthScheme_Oauth2ClientCredentials((oauth2 or OAuth2())._wit)

    @staticmethod
    def oauth2_refresh_token(oauth2=None):
        """The OAuth 2 refresh token grant; a rotated refresh token is stored."""
        return _t.AuthScheme_Oauth2RefreshToken((oauth2 or OAuth2())._wit)

    @staticmethod
    def oauth2_password(oauth2=None):
        """The OAuth 2 resource owner password grant."""
        return _t.AuthScheme_Oauth2Password((oauth2 or OAuth2())._wit)

    @staticmethod
    def jwt(jwt):
        """A JWT the host signs (`Jwt`)."""
        return _t.AuthScheme_Jwt(jwt._wit)


class SecretPlacement:
    """One secret the host puts into a request after the plugin built it:
    the operator's secret `secret` at `name`, written as `template` where
    `{secret}` stands for the secret (`"Token {secret}"`)."""

    def __init__(self, target, name, template, secret):
        self._wit = _t.SecretPlacement(target=target, name=name, template=template, secret=secret)

    @classmethod
    def header(cls, name, template, secret):
        """In the request header `name`."""
        return cls(_t.PlacementTarget.HEADER, name, template, secret)

    @classmethod
    def query(cls, name, template, secret):
        """In the query parameter `name`."""
        return cls(_t.PlacementTarget.QUERY, name, template, secret)

    @classmethod
    def form_field(cls, name, template, secret):
        """In the field `name` of a form body."""
        return cls(_t.PlacementTarget.FORM_FIELD, name, template, secret)

    @classmethod
    def json_field(cls, name, template, secret):
        """In the top-level field `name` of a JSON object body."""
        return cls(_t.PlacementTarget.JSON_FIELD, name, template, secret)


class OAuth2:
    """OAuth 2 settings for the API: no token URL, scopes or audience (the
    operator provides what is needed), client authentication with HTTP Basic
    until said otherwise. The operator may override each of them."""

    def __init__(self):
        self._wit = _t.Oauth2Scheme(token_url=None, scopes=[], audience=None,
                                    client_auth=_t.ClientAuth.BASIC)

    def token_url(self, url):
        """The token endpoint."""
        self._wit.token_url = url
        return self

    def scope(self, scope):
        """Requests `scope` too."""
        self._wit.scopes.append(scope)
        return self

    def audience(self, audience):
        """The `audience` parameter."""
        self._wit.audience = audience
        return self

    def client_auth(self, how):
        """How the client authenticates at the token endpoint: `"basic"` or
        `"body"` (`client_id` and `client_secret` in the form)."""
        self._wit.client_auth = _t.ClientAuth[how.upper()]
        return self


class Jwt:
    """A JWT the host signs with `algorithm` (`"HS256"`, `"RS256"`,
    `"ES256"`), carrying `claims` (a dict where `{now}` and `{exp}` are
    filled in), valid for `lifetime` seconds; sent as a bearer token unless
    `token_url` is set."""

    def __init__(self, algorithm, claims, lifetime):
        self._wit = _t.JwtScheme(algorithm=_t.JwtAlgorithm[algorithm.upper()],
                                 claims=_compact(claims),
                                 lifetime_secs=min(int(lifetime), 2**32 - 1), token_url=None)

    def token_url(self, url):
        """Exchanges the JWT at `url` for an access token."""
        self._wit.token_url = url
        return self


class Connection:
    """A connection the plugin declares: the operator binds it to a base
    URL and secrets; the plugin sees only its name."""

    def __init__(self, name):
        self._wit = _t.ConnectionSpec(
            name=name, description="", base_url=None, auth=Auth.NONE, auth_origins=[],
            shared_headers=[], shared_query=[], verify_call=None,
            rate=_t.RateBudget(requests=None, per_secs=None, concurrent=None),
        )

    def description(self, text):
        """What it connects to, for the people setting it up."""
        self._wit.description = text
        return self

    def base_url(self, url):
        """The default base URL of relative request URLs; the operator may
        override it. Its origin is allowed as if given to `allow_host`."""
        self._wit.base_url = url
        return self

    def auth(self, scheme):
        """The authentication scheme (`Auth`)."""
        self._wit.auth = scheme
        return self

    def auth_origin(self, origin):
        """A further origin (`https://host[:port]`) that may receive the credentials."""
        self._wit.auth_origins.append(origin)
        return self

    def shared_header(self, name, value):
        """A non-secret header sent with every request on this connection."""
        self._wit.shared_headers.append((name, value))
        return self

    def shared_query(self, name, value):
        """A non-secret query pair sent with every request on this connection."""
        self._wit.shared_query.append((name, value))
        return self

    def verify_call(self, call):
        """The data call that checks the connection works."""
        self._wit.verify_call = call
        return self

    def rate(self, requests, per_secs):
        """At most `requests` requests in any window of `per_secs` seconds on
        one credential, shared by every step of the host; the operator may
        narrow it. Both at least 1, or the host refuses the manifest."""
        self._wit.rate.requests, self._wit.rate.per_secs = requests, per_secs
        return self

    def concurrent(self, requests):
        """At most `requests` requests in flight at once on one credential; at
        least 1, or the host refuses the manifest."""
        self._wit.rate.concurrent = requests
        return self


class Call:
    """A call the plugin offers: a handler taking the parsed input and
    returning a JSON value, with JSON Schemas for input and output."""

    def __init__(self, name, handler, kind, input_schema, output_schema):
        self.handler = handler
        self._wit = _t.CallSpec(
            name=name, title=name, description=(handler.__doc__ or "").strip(), kind=kind,
            idempotent=False, input_schema=json.dumps(input_schema),
            output_schema=json.dumps(output_schema),
        )

    @classmethod
    def data(cls, name, handler, input_schema=True, output_schema=True):
        """A call that reads (idempotent unless said otherwise)."""
        return cls(name, handler, _t.CallKind.DATA, input_schema, output_schema).idempotent()

    @classmethod
    def action(cls, name, handler, input_schema=True, output_schema=True):
        """A call that changes something upstream."""
        return cls(name, handler, _t.CallKind.ACTION, input_schema, output_schema)

    def title(self, title):
        self._wit.title = title
        return self

    def idempotent(self, idempotent=True):
        self._wit.idempotent = idempotent
        return self


class Plugin:
    """The plugin's manifest and its calls."""

    def __init__(self, name, version):
        self._wit = _t.Manifest(name=name, version=version, description="",
                                allowed_hosts=[], connections=[], calls=[])
        self._handlers = {}

    def description(self, text):
        self._wit.description = text
        return self

    def allow_host(self, pattern):
        """A host the plugin may reach, such as `https://api.example.com`."""
        self._wit.allowed_hosts.append(pattern)
        return self

    def connection(self, connection):
        self._wit.connections.append(connection._wit)
        return self

    def call(self, call):
        self._wit.calls.append(call._wit)
        self._handlers[call._wit.name] = call.handler
        return self

    def invoke(self, name, input_text):
        """Runs call `name` on `input_text`; returns the output JSON text or
        raises `Err(step-error)` as the WIT export expects."""
        if name == _WARM_UP_CALL:
            return _warm_up()
        handler = self._handlers.get(name)
        try:
            if handler is None:
                raise InvalidInput(f"no call `{name}`")
            return _compact(handler(json.loads(input_text)))
        except StepError as e:
            raise Err(e.to_wit()) from None


# `courier build` calls this on the built component once, against imports
# that answer without a network, then snapshots the instance: every step's
# fresh instance starts with these paths already run (bytecode specialised,
# caches filled). No manifest may declare the name, so no step can call it.
_WARM_UP_CALL = "courier:warm-up"


def _warm_up():
    for _ in range(8):
        request = (Request.post("https://warm-up.invalid/courier").query("q", "1")
                   .header("accept", "application/json").json({"warm": [1, "up", None]}))
        response = request.send().error_for_status()
        response.header("content-type")
        _compact(response.json())
        bound_connections()
    return "{}"


def export(plugin):
    """The class componentize-py exports as the `integration` interface:
    bind it to the name `Integration` in the plugin's app module."""

    class Integration:
        def describe(self):
            return plugin._wit

        def invoke(self, call, input):
            return plugin.invoke(call, input)

    return Integration
