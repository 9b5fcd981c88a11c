"""The generic "External API Request" step in Python: the same call
`request`, input and output as the Rust `http-request` plugin (for the
fields listed in its input schema), sent by the host through the operator's
`default` connection when the step binds it."""

import base64
import binascii
import json

from courier_sdk import (Auth, Call, Connection, FormPart, HttpError, InvalidInput, Pagination,
                         Plugin, Request, RetryPolicy, bound_connections, export)

CONNECTION = "default"

_SCALAR = {"type": ["string", "number", "boolean"]}
_PAIRS = {
    "anyOf": [
        {"type": "object", "additionalProperties": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]}},
        {"type": "array", "items": {"type": "array", "prefixItems": [{"type": "string"}, _SCALAR],
                                    "minItems": 2, "maxItems": 2}},
    ]
}
_HEADERS = {
    "anyOf": [
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "array", "items": {"type": "array", "items": {"type": "string"},
                                    "minItems": 2, "maxItems": 2}},
    ]
}

_ENCODING = {"enum": ["utf8", "base64", "hex"], "description": "How the string of a raw body is written (default utf8)."}
# Each paginate field naming a query parameter, with the `type` it belongs to.
_PAGINATE_NAMES = {"cursor_path_in_response": "cursor", "cursor_name_in_request": "cursor",
                   "page_name_in_request": "page", "offset_name_in_request": "offset"}

INPUT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "description": "An absolute http(s) URL, or a path relative to the default connection's base URL."},
        "method": {"type": "string", "description": "The HTTP method, in any case (default GET)."},
        "params": {**_PAIRS, "description": "Query parameters: an object or a list of [name, value] pairs."},
        "headers": {**_HEADERS, "description": "Request headers: an object or a list of [name, value] pairs."},
        "body": {"description": "The request body, encoded as body_type says."},
        "body_type": {"enum": ["json", "form", "text", "raw", "xml", "graphql", "multipart"],
                      "description": "How to encode body (default json)."},
        "encoding": _ENCODING,
        "timeout": {"type": "number", "description": "Seconds allowed for the request (default 30)."},
        "follow_location": {"type": "boolean", "description": "Whether to follow redirects (default true)."},
        "retry": {
            "type": "object", "additionalProperties": False,
            "description": "Retries of the request (as the Rust plugin's `retry`).",
            "properties": {
                "attempts": {"type": "integer", "minimum": 1},
                "backoff": {"type": "object", "additionalProperties": False,
                            "properties": {"initial": {"type": "number"}, "max": {"type": "number"}}},
                "statuses": {"type": "array", "items": {"type": "integer"}},
            },
        },
        "idempotency_key": {"type": ["string", "boolean"],
                            "description": "Sent as Idempotency-Key: a string, or true for a key from the host."},
        "paginate": {
            "type": "object", "additionalProperties": False, "required": ["type"],
            "description": "Follow the API's pages (as the Rust plugin's `paginate`).",
            "properties": {
                "type": {"enum": ["cursor", "page", "offset", "link"]},
                **{name: {"type": "string"} for name in _PAGINATE_NAMES},
                "response_path": {"type": "string"},
                "limit_name_in_request": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1},
                "max_pages": {"type": "integer", "minimum": 1},
            },
        },
        "cache": {"type": "object", "additionalProperties": False, "required": ["ttl"],
                  "properties": {"ttl": {"type": "number"}},
                  "description": "Let the host answer a GET or HEAD from its response cache."},
    },
}

OUTPUT_SCHEMA = {
    "type": "object",
    "required": ["status", "headers", "body", "body_base64", "url"],
    "properties": {
        "status": {"type": "integer"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {},
        "body_base64": {"type": "boolean"},
        "url": {"type": "string"},
    },
}


def request(input):
    """Sends an HTTP request and returns its status, headers and body. A
    status outside 2xx fails the step with outcome http-error, still
    carrying the response as output."""
    req = build(input)
    if CONNECTION in bound_connections():
        req.connection(CONNECTION)
    out = output(req.send())
    if 200 <= out["status"] < 300:
        return out
    raise HttpError(out["status"], f"upstream answered {out['status']}", out)


def build(input):
    """The request the input describes, without a connection."""
    req = (Request(input.get("method", "GET"), input["url"])
           .timeout(input.get("timeout", 30.0))
           .follow_redirects(input.get("follow_location", True)))
    if "retry" in input:
        retry, backoff = input["retry"], input["retry"].get("backoff", {})
        req.retry(RetryPolicy.attempts(retry.get("attempts", 3))
                  .backoff(seconds(backoff.get("initial", 0.2), "retry.backoff.initial"),
                           seconds(backoff.get("max", 5.0), "retry.backoff.max"))
                  .on_status(retry.get("statuses", [429, 502, 503, 504])))
    if "cache" in input:
        req.cache(positive(input["cache"]["ttl"], "cache.ttl"))
    if "paginate" in input:
        req.paginate(pagination(input["paginate"]))
    key = input.get("idempotency_key", False)
    if key is True:
        req.generated_idempotency_key()
    elif isinstance(key, str):
        req.idempotency_key(key)
    for name, value in flatten(input.get("params", {})):
        req.query(name, value)
    headers = pairs(input.get("headers", {}))
    if input.get("body") is not None:
        body, body_type = input["body"], input.get("body_type", "json")
        if body_type == "json":
            req.json(body)
        elif body_type == "form":
            req.form(flatten(body))
        elif body_type == "graphql":
            if not isinstance(body, dict) or not isinstance(body.get("query"), str):
                raise InvalidInput("body does not suit body_type graphql: expected an object with a query")
            req.graphql(body["query"], body.get("variables"), body.get("operation_name"))
        elif body_type == "multipart":
            req.multipart(form_part(part) for part in body)
        elif body_type in ("text", "xml", "raw") and not isinstance(body, str):
            raise InvalidInput(f"body does not suit body_type {body_type}: expected a string")
        elif body_type == "text":
            req.text(body)
        elif body_type == "xml":
            req.xml(body)
        else:
            content_type = take_header(headers, "content-type") or "application/octet-stream"
            req.bytes(content_type, decode(body, input.get("encoding", "utf8"), "body"))
    for name, value in headers:
        req.header(name, value)
    return req


def seconds(value, field):
    """A number of seconds, 0 or more."""
    if not value >= 0:
        raise InvalidInput(f"{field}: expected a number of seconds, 0 or more")
    return value


def positive(value, field):
    """A positive number of seconds."""
    if not value > 0:
        raise InvalidInput(f"{field}: expected a positive number of seconds")
    return value


def pagination(p):
    """The host's pagination for the input's `paginate`; a name that belongs
    to another `type` is refused."""
    kind = p["type"]
    for field, owner in _PAGINATE_NAMES.items():
        if field in p and owner != kind:
            raise InvalidInput(f"paginate.{field}: does not apply to this `type`")
    if kind == "cursor":
        for field in ("cursor_path_in_response", "cursor_name_in_request"):
            if field not in p:
                raise InvalidInput(f"paginate.{field}: required with `type` cursor")
        pages = Pagination.cursor(p["cursor_path_in_response"], p["cursor_name_in_request"])
    elif kind == "page":
        pages = Pagination.page(p.get("page_name_in_request", "page"))
    elif kind == "offset":
        pages = Pagination.offset(p.get("offset_name_in_request", "offset"))
    else:
        pages = Pagination.link()
    pages.items(p.get("response_path", ""))
    if "limit_name_in_request" in p:
        if "limit" not in p:
            raise InvalidInput("paginate.limit: required with `limit_name_in_request`")
        pages.page_size(p["limit_name_in_request"], p["limit"])
    elif "limit" in p:
        pages.page_size(None, p["limit"])
    if "max_pages" in p:
        pages.max_pages(p["max_pages"])
    return pages


def form_part(part):
    """The SDK's form part for a multipart input part."""
    if not isinstance(part, dict) or not {"name", "value"} <= part.keys():
        raise InvalidInput("body does not suit body_type multipart: expected parts with a name and a value")
    data = decode(part["value"], part.get("encoding", "utf8"), f"multipart part `{part['name']}`")
    form = FormPart(part["name"], data)
    if part.get("filename") is not None:
        form.filename(part["filename"])
    if part.get("content_type") is not None:
        form.content_type(part["content_type"])
    return form


def pairs(value):
    """(name, value) pairs from an object (in order) or a list of pairs."""
    return list(value.items()) if isinstance(value, dict) else [tuple(p) for p in value]


def scalar(value):
    """A scalar as text, numbers and booleans as JSON writes them."""
    return value if isinstance(value, str) else json.dumps(value)


def flatten(value):
    """One (name, text) pair per scalar, a list under one name repeated."""
    if not isinstance(value, (dict, list)):
        raise InvalidInput("expected an object or a list of [name, value] pairs")
    out = []
    for name, v in pairs(value):
        out.extend((name, scalar(s)) for s in (v if isinstance(v, list) else [v]))
    return out


def take_header(headers, name):
    """Removes every header named `name` (any case); returns the last value."""
    found = [v for n, v in headers if n.lower() == name]
    headers[:] = [(n, v) for n, v in headers if n.lower() != name]
    return found[-1] if found else None


def decode(text, encoding, what):
    """The bytes a string stands for (`what` names it in an error)."""
    try:
        if encoding == "base64":
            return base64.b64decode(text, validate=True)
        if encoding == "hex":
            return bytes.fromhex(text)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput(f"{what}: invalid {encoding}: {e}") from None
    return text.encode("utf-8")


def output(response):
    """The response as the step's output, as the Rust plugin writes it."""
    headers = {}
    for name, value in response.headers:
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    content_type = (response.header("content-type") or "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    try:
        text = response.body.decode("utf-8")
    except UnicodeDecodeError:
        body, body_base64 = base64.b64encode(response.body).decode("ascii"), True
    else:
        body, body_base64 = text, False
        if is_json:
            try:
                body = json.loads(text)
            except ValueError:
                pass
    return {"status": response.status, "headers": headers, "body": body,
            "body_base64": body_base64, "url": response.final_url}


Integration = export(
    Plugin("http-request-py", "0.1.0")
    .description("External API Request (Python): sends one HTTP request and returns the response")
    .allow_host("https://*:*")
    .allow_host("http://*:*")
    .connection(Connection(CONNECTION)
                .description("The API to call: the operator sets its base URL and authentication")
                .auth(Auth.OPERATOR_DEFINED))
    .call(Call.action("request", request, INPUT_SCHEMA, OUTPUT_SCHEMA).title("External API Request"))
)
