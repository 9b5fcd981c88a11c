"""schemathesis hooks for `courier serve` (scripts/schemathesis.toml loads them).

`POST /v1/plugins` takes a component as `application/wasm`: sent as raw
bytes, like `application/octet-stream`.
"""

import schemathesis

schemathesis.serializer.alias("application/wasm", "application/octet-stream")
