"""A small client for `./dev demo`'s service part (standard library only):
`api.py METHOD URL TOKEN [JSON | @FILE]` prints the status line, then the
JSON answer, pretty; exits non-zero for a status of 400 or more. `@FILE`
sends a plugin component's bytes as `application/wasm`."""

import json
import sys
import urllib.error
import urllib.request


def main():
    method, url, token = sys.argv[1:4]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    content_type = "application/json"
    if arg is None:
        body = None
    elif arg.startswith("@"):
        with open(arg[1:], "rb") as f:
            body, content_type = f.read(), "application/wasm"
    else:
        body = arg.encode()
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(request) as response:
            status, headers, text = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        status, headers, text = e.code, e.headers, e.read()
    step_id = headers.get("courier-step-id")
    print(f"HTTP {status}" + (f"  Courier-Step-Id: {step_id}" if step_id else ""), file=sys.stderr)
    if text:
        print(json.dumps(json.loads(text), indent=2))
    sys.exit(1 if status >= 400 else 0)


main()
