// Slack in JavaScript, with the same calls, inputs and outputs as the Rust
// `slack` plugin: post a message (`chat.postMessage`) and list conversations
// (`conversations.list`, every page through `response_metadata.next_cursor`).
// Slack answers most failures with HTTP 200 and `"ok": false`
// (<https://api.slack.com/web#evaluating_responses>): such an answer fails
// the step with Slack's error code in the message. The operator's connection
// holds a bot or user token, sent as a bearer token
// (<https://api.slack.com/web#authentication>).

import {
  Auth, Call, Connection, Failed, Pagination, Plugin, Request, RetryPolicy, exportPlugin,
} from '../../guest-sdk/js/courier-sdk.js';

/** The connection the operator binds: one workspace's token. */
const CONNECTION = 'slack';

const SCHEMA = 'https://json-schema.org/draft/2020-12/schema';

/** A property that may be null, null by default. */
const optional = (type, description, more = {}) =>
  ({ type: [type, 'null'], ...more, description, default: null });

const POST_MESSAGE = {
  $schema: SCHEMA,
  title: 'PostMessage',
  description: '`chat.postMessage` (<https://api.slack.com/methods/chat.postMessage>).',
  type: 'object',
  additionalProperties: false,
  required: ['channel', 'text'],
  properties: {
    channel: { type: 'string', description: 'A channel id (`C…`) or name.' },
    text: { type: 'string', description: 'The message text (the notification fallback when `blocks` is set).' },
    blocks: optional('array', 'Block Kit blocks, an array.', { items: true }),
    thread_ts: optional('string', "The parent message's `ts`, to reply in its thread."),
  },
};

const POSTED = {
  $schema: SCHEMA,
  title: 'Posted',
  description: 'The posted message.',
  type: 'object',
  required: ['channel', 'ts'],
  properties: {
    channel: { type: 'string', description: "The channel's id." },
    ts: { type: 'string', description: "The message's timestamp, its id within the channel." },
  },
};

const LIST_CONVERSATIONS = {
  $schema: SCHEMA,
  title: 'ListConversations',
  description: '`conversations.list` (<https://api.slack.com/methods/conversations.list>).',
  type: 'object',
  additionalProperties: false,
  properties: {
    types: optional('string', 'A comma-separated list of `public_channel`, `private_channel`, `mpim`,\n`im` (default `public_channel`).'),
    exclude_archived: { type: 'boolean', description: 'Leave archived channels out.', default: false },
    page_size: {
      type: 'integer', format: 'uint32', minimum: 1, maximum: 1000, default: 200,
      description: 'Conversations per page, 1 to 1000 (default 200, as Slack recommends).',
    },
    max_pages: optional('integer', 'At most this many pages (the host caps pages and items too).', { format: 'uint32', minimum: 1 }),
  },
};

const CONVERSATIONS = {
  $schema: SCHEMA,
  title: 'Conversations',
  description: 'The conversations a list returned.',
  type: 'object',
  required: ['conversations', 'pagination'],
  properties: {
    conversations: {
      type: 'array',
      description: "Every conversation on the pages read, in Slack's order.",
      items: {
        description: 'A conversation, as the call returns it.',
        type: 'object',
        required: ['id'],
        properties: {
          id: { type: 'string', description: 'Its id (`C…`, `G…`, `D…`).' },
          name: optional('string', 'Its name (absent for direct messages).'),
          is_private: { type: 'boolean', description: 'Whether it is private.', default: false },
          is_archived: { type: 'boolean', description: 'Whether it is archived.', default: false },
        },
      },
    },
    pagination: { type: 'string', description: 'Why paging ended: `complete`, or the cap that was reached.' },
  },
};

/** Posts a message to a channel (chat.postMessage). */
function postMessage(input) {
  const form = [['channel', input.channel], ['text', input.text]];
  if (input.blocks != null) form.push(['blocks', JSON.stringify(input.blocks)]);
  if (input.thread_ts != null) form.push(['thread_ts', input.thread_ts]);
  const body = slack(Request.post('/chat.postMessage').form(form));
  return { channel: body.channel, ts: body.ts };
}

/** Lists the workspace's conversations, following every page. */
function listConversations(input) {
  const maxPages = input.max_pages ?? undefined;
  const page = (cursor) => {
    const request = Request.get('/conversations.list')
      .query('types', input.types ?? 'public_channel')
      .query('exclude_archived', input.exclude_archived ?? false)
      .query('limit', input.page_size ?? 200)
      // Slack's rate limits answer 429 with `Retry-After`
      // (https://api.slack.com/apis/rate-limits); the host waits it out.
      .retry(RetryPolicy.attempts(3));
    return cursor === undefined ? request : request.query('cursor', cursor);
  };
  const first = slack(page());
  const conversations = first.channels.map(conversation);
  const cursor = first.response_metadata?.next_cursor ?? '';
  if (!cursor || maxPages === 1) {
    return { conversations, pagination: cursor ? 'max-pages' : 'complete' };
  }
  // The rest through the host's page loop, from the first page's cursor.
  const pages = Pagination.cursor('response_metadata.next_cursor', 'cursor').items('channels');
  if (maxPages !== undefined) pages.maxPages(maxPages - 1);
  const rest = page(cursor).paginate(pages).connection(CONNECTION).send().errorForStatus();
  conversations.push(...rest.json().map(conversation));
  return { conversations, pagination: rest.header('courier-pagination') ?? 'complete' };
}

/** A conversation as the call returns it (the fields it declares). */
function conversation(channel) {
  return {
    id: channel.id,
    name: channel.name ?? null,
    is_private: channel.is_private ?? false,
    is_archived: channel.is_archived ?? false,
  };
}

/** Sends `request` on the Slack connection and returns its JSON body; a
 * status outside 2xx, or `"ok": false`, fails the step naming Slack's `error`. */
function slack(request) {
  const body = request.connection(CONNECTION).send().errorForStatus().json();
  if (body?.ok === true) return body;
  const error = typeof body?.error === 'string' ? body.error : 'unknown';
  let message = `Slack answered ok: false, error \`${error}\``;
  if (typeof body?.needed === 'string') message += ` (needs scope \`${body.needed}\`)`;
  throw new Failed(message);
}

export const integration = exportPlugin(
  new Plugin('slack-js', '0.1.0')
    .description('Slack messages and conversations')
    .allowHost('https://slack.com/api/*')
    .connection(new Connection(CONNECTION)
      .description('A Slack workspace: a bot (`xoxb-`) or user token as `token`')
      .baseUrl('https://slack.com/api')
      .auth(Auth.bearer)
      .verifyCall('list_conversations'))
    .call(Call.action('post_message', postMessage, POST_MESSAGE, POSTED).title('Post message')
      .description('Posts a message to a channel (chat.postMessage).'))
    .call(Call.data('list_conversations', listConversations, LIST_CONVERSATIONS, CONVERSATIONS)
      .title('List conversations')
      .description("Lists the workspace's conversations, following every page.")),
);
