// Unit tests of the Slack plugin against the SDK's MockHost
// (guest-sdk/js/testing.js; `./dev test` runs them with `node --test`). The
// real host and Slack's OpenAPI document check it in tests/all/vendors/slack.rs.

import assert from 'node:assert/strict';
import test from 'node:test';

import { Expect, Reply, withMockHost } from '../../guest-sdk/js/testing.js';

const { integration } = await import('./app.js');

/** Runs `call` on `input` as the host does: the output parsed, or throws the WIT step error. */
const invoke = (call, input) => JSON.parse(integration.invoke(call, JSON.stringify(input)));

test('post_message posts the form Slack documents', () => withMockHost((host) => {
  host.expect(Expect.post('/chat.postMessage').connection('slack')
    .form([['channel', 'C1'], ['text', 'héllo'], ['blocks', '[{"type":"divider"}]'], ['thread_ts', '1.5']])
    .reply(Reply.json(200, { ok: true, channel: 'C1', ts: '2.5' })));
  const posted = invoke('post_message',
    { channel: 'C1', text: 'héllo', blocks: [{ type: 'divider' }], thread_ts: '1.5' });
  assert.deepEqual(posted, { channel: 'C1', ts: '2.5' });
}));

test("ok: false fails naming Slack's error and the scope", () => withMockHost((host) => {
  host.expect(Expect.post('/chat.postMessage')
    .reply(Reply.json(200, { ok: false, error: 'missing_scope', needed: 'chat:write' })));
  assert.throws(() => invoke('post_message', { channel: 'C1', text: 'hi' }), {
    tag: 'failed', val: 'Slack answered ok: false, error `missing_scope` (needs scope `chat:write`)',
  });
}));

test("list_conversations reads one page, then the rest through the host's page loop", () => withMockHost((host) => {
  host.expect(Expect.get('/conversations.list').connection('slack')
    .queryExactly([['types', 'private_channel'], ['exclude_archived', 'true'], ['limit', '2']])
    .reply(Reply.json(200, {
      ok: true, channels: [{ id: 'C1', name: 'general' }],
      response_metadata: { next_cursor: 'dXNlcjpVMDYx' },
    })));
  host.expect(Expect.get('/conversations.list').query('cursor', 'dXNlcjpVMDYx')
    .reply(Reply.json(200, [{ id: 'C2', is_private: true }]).header('courier-pagination', 'max-pages')));
  const listed = invoke('list_conversations',
    { types: 'private_channel', exclude_archived: true, page_size: 2, max_pages: 3 });
  assert.deepEqual(listed, {
    conversations: [
      { id: 'C1', name: 'general', is_private: false, is_archived: false },
      { id: 'C2', name: null, is_private: true, is_archived: false },
    ],
    pagination: 'max-pages',
  });
  const paged = host.requests()[1].wit.pagination;
  assert.deepEqual([paged.itemsPath, paged.maxPages, paged.style.val.path],
    ['channels', 2, 'response_metadata.next_cursor']);
}));

test('a single page sends one request, with a retry policy', () => withMockHost((host) => {
  host.expect(Expect.get('/conversations.list').query('types', 'public_channel')
    .reply(Reply.json(200, { ok: true, channels: [] })));
  assert.deepEqual(invoke('list_conversations', {}), { conversations: [], pagination: 'complete' });
  assert.equal(host.requests().length, 1);
  assert.equal(host.requests()[0].wit.retry.maxAttempts, 3);
}));

test("a send error is the step's error as the host gave it", () => withMockHost((host) => {
  host.expect(Expect.get('/conversations.list').reply(Reply.error('timeout', 'total')));
  assert.throws(() => invoke('list_conversations', {}), { tag: 'send', val: { tag: 'timeout', val: 'total' } });
}));
