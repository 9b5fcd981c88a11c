//! Slack: post a message (`chat.postMessage`) and list conversations
//! (`conversations.list`, every page through `response_metadata.next_cursor`).
//! Slack answers most failures with HTTP 200 and `"ok": false`
//! (<https://api.slack.com/web#evaluating_responses>): such an answer fails
//! the step with Slack's error code in the message. The operator's
//! connection holds a bot or user token, sent as a bearer token
//! (<https://api.slack.com/web#authentication>).

use courier_sdk::prelude::*;

/// The connection the operator binds: one workspace's token.
const CONNECTION: &str = "slack";

fn plugin() -> Plugin {
    Plugin::new("slack", env!("CARGO_PKG_VERSION"))
        .description("Slack messages and conversations")
        .allow_host("https://slack.com/api/*")
        .connection(
            Connection::new(CONNECTION)
                .description("A Slack workspace: a bot (`xoxb-`) or user token as `token`")
                .base_url("https://slack.com/api")
                .auth(Auth::Bearer)
                .verify_call("list_conversations"),
        )
        .call(post_message::call())
        .call(list_conversations::call())
}

courier_sdk::export!(plugin);

/// `chat.postMessage` (<https://api.slack.com/methods/chat.postMessage>).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PostMessage {
    /// A channel id (`C…`) or name.
    channel: String,
    /// The message text (the notification fallback when `blocks` is set).
    text: String,
    /// Block Kit blocks, an array.
    #[serde(default)]
    blocks: Option<Vec<Value>>,
    /// The parent message's `ts`, to reply in its thread.
    #[serde(default)]
    thread_ts: Option<String>,
}

/// The posted message.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Posted {
    /// The channel's id.
    channel: String,
    /// The message's timestamp, its id within the channel.
    ts: String,
}

/// `conversations.list` (<https://api.slack.com/methods/conversations.list>).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListConversations {
    /// A comma-separated list of `public_channel`, `private_channel`, `mpim`,
    /// `im` (default `public_channel`).
    #[serde(default)]
    types: Option<String>,
    /// Leave archived channels out.
    #[serde(default)]
    exclude_archived: bool,
    /// Conversations per page, 1 to 1000 (default 200, as Slack recommends).
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 1000))]
    page_size: u32,
    /// At most this many pages (the host caps pages and items too).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_pages: Option<u32>,
}

fn default_page_size() -> u32 {
    200
}

/// A conversation, as the call returns it.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Conversation {
    /// Its id (`C…`, `G…`, `D…`).
    id: String,
    /// Its name (absent for direct messages).
    #[serde(default)]
    name: Option<String>,
    /// Whether it is private.
    #[serde(default)]
    is_private: bool,
    /// Whether it is archived.
    #[serde(default)]
    is_archived: bool,
}

/// The conversations a list returned.
#[derive(Serialize, JsonSchema)]
struct Conversations {
    /// Every conversation on the pages read, in Slack's order.
    conversations: Vec<Conversation>,
    /// Why paging ended: `complete`, or the cap that was reached.
    pagination: String,
}

/// The first page of `conversations.list`, read by the plugin itself so
/// that an `ok: false` answer names Slack's error.
#[derive(Deserialize)]
struct FirstPage {
    channels: Vec<Conversation>,
    #[serde(default)]
    response_metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    next_cursor: String,
}

/// Posts a message to a channel (chat.postMessage).
#[call(action, title = "Post message")]
fn post_message(input: PostMessage) -> Result<Posted, StepError> {
    let mut form = vec![("channel", input.channel), ("text", input.text)];
    if let Some(blocks) = input.blocks {
        form.push(("blocks", serde_json::to_string(&blocks)?));
    }
    if let Some(thread) = input.thread_ts {
        form.push(("thread_ts", thread));
    }
    slack(Request::post("/chat.postMessage").form(form))?.json()
}

/// Lists the workspace's conversations, following every page.
#[call(data, title = "List conversations")]
fn list_conversations(input: ListConversations) -> Result<Conversations, StepError> {
    let types = input.types.unwrap_or_else(|| "public_channel".to_owned());
    let list = |cursor: Option<String>| {
        let mut request = Request::get("/conversations.list")
            .query("types", types.clone())
            .query("exclude_archived", input.exclude_archived.to_string())
            .query("limit", input.page_size.to_string())
            // Slack's rate limits answer 429 with `Retry-After`
            // (https://api.slack.com/apis/rate-limits); the host waits it out.
            .retry(RetryPolicy::attempts(3));
        if let Some(cursor) = cursor {
            request = request.query("cursor", cursor);
        }
        request
    };
    let first: FirstPage = slack(list(None))?.json()?;
    let mut conversations = first.channels;
    let cursor = first
        .response_metadata
        .map(|m| m.next_cursor)
        .unwrap_or_default();
    if cursor.is_empty() || input.max_pages == Some(1) {
        return Ok(Conversations {
            conversations,
            pagination: if cursor.is_empty() {
                "complete"
            } else {
                "max-pages"
            }
            .to_owned(),
        });
    }
    // The rest through the host's page loop, from the first page's cursor.
    let mut pages = Pagination::cursor("response_metadata.next_cursor", "cursor").items("channels");
    if let Some(max) = input.max_pages {
        pages = pages.max_pages(max - 1);
    }
    let rest = list(Some(cursor))
        .paginate(pages)
        .connection(CONNECTION)
        .send()?;
    let rest = rest.error_for_status()?;
    conversations.extend(rest.json::<Vec<Conversation>>()?);
    Ok(Conversations {
        conversations,
        pagination: rest
            .header("courier-pagination")
            .unwrap_or("complete")
            .to_owned(),
    })
}

/// Sends `request` on the Slack connection; a status outside 2xx, or
/// `"ok": false`, fails the step naming Slack's `error`.
fn slack(request: Request) -> Result<Response, StepError> {
    let response = request.connection(CONNECTION).send()?.error_for_status()?;
    let body: Value = response.json()?;
    if body.get("ok") == Some(&Value::Bool(true)) {
        return Ok(response);
    }
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut message = format!("Slack answered ok: false, error `{error}`");
    if let Some(needed) = body.get("needed").and_then(Value::as_str) {
        message.push_str(&format!(" (needs scope `{needed}`)"));
    }
    Err(StepError::failed(message))
}
