"""An MCP client session against `courier serve`, with the `mcp` package (PyPI).

    mcp_client.py URL TOKEN [CALL_JSON]...

Connects over Streamable HTTP with `Authorization: Bearer TOKEN`, initializes,
lists the tools and makes each call, in order, in one session: CALL_JSON is
`{"tool": NAME, "arguments": {...}}`, with `"meta": {...}` for the request's
`_meta` if any. Prints one JSON document: the server's name, the tools and the
calls' results as the client parsed them, and `raw`, every response body the
client received, byte for byte (so a test can search them for secrets). A
failure prints `{"error": …, "statuses": […]}` (the HTTP statuses received)
and exits 3. `tests/all/service/mcp.rs` drives it; `./dev` installs the venv.
"""

import asyncio
import json
import sys

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client


class Recording(httpx2.AsyncBaseTransport):
    """The default transport, keeping a copy of every response body."""

    def __init__(self):
        self.inner = httpx2.AsyncHTTPTransport()
        self.bodies = []
        self.statuses = []

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        record = bytearray()
        self.bodies.append(record)
        stream = response.stream

        class Tee(httpx2.AsyncByteStream):
            async def __aiter__(self):
                async for chunk in stream:
                    record.extend(chunk)
                    yield chunk

            async def aclose(self):
                await stream.aclose()

        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=Tee(),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self):
        await self.inner.aclose()


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def session(recording, url, token, calls):
    client = httpx2.AsyncClient(
        transport=recording, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    report = {}
    async with client, streamable_http_client(url, http_client=client) as (read, write):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            report["server"] = init.server_info.name
            report["tools"] = [dump(t) for t in (await s.list_tools()).tools]
            report["calls"] = [
                dump(await s.call_tool(c["tool"], c["arguments"], meta=c.get("meta")))
                for c in calls
            ]
    report["raw"] = b"\n".join(bytes(b) for b in recording.bodies).decode("utf-8", "replace")
    return report


def main():
    url, token, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    calls = [json.loads(c) for c in rest]
    recording = Recording()
    try:
        report = asyncio.run(session(recording, url, token, calls))
    except BaseException as e:  # the client raises groups of errors
        print(json.dumps({"error": repr(e), "statuses": recording.statuses}))
        sys.exit(3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
