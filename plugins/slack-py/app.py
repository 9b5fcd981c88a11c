"""Slack in Python, with the same calls, inputs and outputs as the Rust
`slack` plugin: post a message (`chat.postMessage`) and list conversations
(`conversations.list`, every page through `response_metadata.next_cursor`).
Slack answers most failures with HTTP 200 and `"ok": false`
(<https://api.slack.com/web#evaluating_responses>): such an answer fails the
step with Slack's error code in the message. The operator's connection holds
a bot or user token, sent as a bearer token
(<https://api.slack.com/web#authentication>)."""

import json

from courier_sdk import (Auth, Call, Connection, Failed, Pagination, Plugin, Request,
                         RetryPolicy, export)

# The connection the operator binds: one workspace's token.
CONNECTION = "slack"

SCHEMA = "https://json-schema.org/draft/2020-12/schema"


def _optional(kind, description, **more):
    """A property that may be null, null by default."""
    return {"type": [kind, "null"], **more, "description": description, "default": None}


POST_MESSAGE = {
    "$schema": SCHEMA, "title": "PostMessage",
    "description": "`chat.postMessage` (<https://api.slack.com/methods/chat.postMessage>).",
    "type": "object", "additionalProperties": False, "required": ["channel", "text"],
    "properties": {
        "channel": {"type": "string", "description": "A channel id (`C…`) or name."},
        "text": {"type": "string", "description":
                 "The message text (the notification fallback when `blocks` is set)."},
        "blocks": _optional("array", "Block Kit blocks, an array.", items=True),
        "thread_ts": _optional("string", "The parent message's `ts`, to reply in its thread."),
    },
}

POSTED = {
    "$schema": SCHEMA, "title": "Posted", "description": "The posted message.",
    "type": "object", "required": ["channel", "ts"],
    "properties": {
        "channel": {"type": "string", "description": "The channel's id."},
        "ts": {"type": "string", "description": "The message's timestamp, its id within the channel."},
    },
}

LIST_CONVERSATIONS = {
    "$schema": SCHEMA, "title": "ListConversations",
    "description": "`conversations.list` (<https://api.slack.com/methods/conversations.list>).",
    "type": "object", "additionalProperties": False,
    "properties": {
        "types": _optional("string", "A comma-separated list of `public_channel`, "
                           "`private_channel`, `mpim`,\n`im` (default `public_channel`)."),
        "exclude_archived": {"type": "boolean", "description": "Leave archived channels out.",
                             "default": False},
        "page_size": {"type": "integer", "format": "uint32", "minimum": 1, "maximum": 1000,
                      "default": 200, "description":
                      "Conversations per page, 1 to 1000 (default 200, as Slack recommends)."},
        "max_pages": _optional("integer", "At most this many pages (the host caps pages and "
                               "items too).", format="uint32", minimum=1),
    },
}

CONVERSATIONS = {
    "$schema": SCHEMA, "title": "Conversations", "description": "The conversations a list returned.",
    "type": "object", "required": ["conversations", "pagination"],
    "properties": {
        "conversations": {
            "type": "array", "description": "Every conversation on the pages read, in Slack's order.",
            "items": {
                "description": "A conversation, as the call returns it.",
                "type": "object", "required": ["id"],
                "properties": {
                    "id": {"type": "string", "description": "Its id (`C…`, `G…`, `D…`)."},
                    "name": _optional("string", "Its name (absent for direct messages)."),
                    "is_private": {"type": "boolean", "description": "Whether it is private.",
                                   "default": False},
                    "is_archived": {"type": "boolean", "description": "Whether it is archived.",
                                    "default": False},
                },
            },
        },
        "pagination": {"type": "string", "description":
                       "Why paging ended: `complete`, or the cap that was reached."},
    },
}


def post_message(input):
    """Posts a message to a channel (chat.postMessage)."""
    form = [("channel", input["channel"]), ("text", input["text"])]
    if input.get("blocks") is not None:
        form.append(("blocks", json.dumps(input["blocks"], separators=(",", ":"),
                                          ensure_ascii=False)))
    if input.get("thread_ts") is not None:
        form.append(("thread_ts", input["thread_ts"]))
    body = slack(Request.post("/chat.postMessage").form(form))
    return {"channel": body["channel"], "ts": body["ts"]}


def list_conversations(input):
    """Lists the workspace's conversations, following every page."""
    max_pages = input.get("max_pages")

    def page(cursor=None):
        request = (Request.get("/conversations.list")
                   .query("types", input.get("types") or "public_channel")
                   .query("exclude_archived", json.dumps(input.get("exclude_archived", False)))
                   .query("limit", input.get("page_size", 200))
                   # Slack's rate limits answer 429 with `Retry-After`
                   # (https://api.slack.com/apis/rate-limits); the host waits it out.
                   .retry(RetryPolicy.attempts(3)))
        return request if cursor is None else request.query("cursor", cursor)

    first = slack(page())
    conversations = [conversation(c) for c in first["channels"]]
    cursor = (first.get("response_metadata") or {}).get("next_cursor", "")
    if not cursor or max_pages == 1:
        return {"conversations": conversations,
                "pagination": "max-pages" if cursor else "complete"}
    # The rest through the host's page loop, from the first page's cursor.
    pages = Pagination.cursor("response_metadata.next_cursor", "cursor").items("channels")
    if max_pages is not None:
        pages.max_pages(max_pages - 1)
    rest = page(cursor).paginate(pages).connection(CONNECTION).send().error_for_status()
    conversations.extend(conversation(c) for c in rest.json())
    return {"conversations": conversations,
            "pagination": rest.header("courier-pagination") or "complete"}


def conversation(channel):
    """A conversation as the call returns it (the fields it declares)."""
    return {"id": channel["id"], "name": channel.get("name"),
            "is_private": channel.get("is_private", False),
            "is_archived": channel.get("is_archived", False)}


def slack(request):
    """Sends `request` on the Slack connection and returns its JSON body; a
    status outside 2xx, or `"ok": false`, fails the step naming Slack's `error`."""
    body = request.connection(CONNECTION).send().error_for_status().json()
    if isinstance(body, dict) and body.get("ok") is True:
        return body
    error = body.get("error") if isinstance(body, dict) else None
    message = f"Slack answered ok: false, error `{error if isinstance(error, str) else 'unknown'}`"
    needed = body.get("needed") if isinstance(body, dict) else None
    if isinstance(needed, str):
        message += f" (needs scope `{needed}`)"
    raise Failed(message)


Integration = export(
    Plugin("slack-py", "0.1.0")
    .description("Slack messages and conversations")
    .allow_host("https://slack.com/api/*")
    .connection(Connection(CONNECTION)
                .description("A Slack workspace: a bot (`xoxb-`) or user token as `token`")
                .base_url("https://slack.com/api")
                .auth(Auth.BEARER)
                .verify_call("list_conversations"))
    .call(Call.action("post_message", post_message, POST_MESSAGE, POSTED).title("Post message"))
    .call(Call.data("list_conversations", list_conversations, LIST_CONVERSATIONS, CONVERSATIONS)
          .title("List conversations"))
)
