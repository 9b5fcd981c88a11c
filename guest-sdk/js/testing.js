// A test double for the host, so a plugin's calls run under `node --test`,
// without a component (as `courier_sdk::testing` does for Rust plugins).
//
// Importing this module lets Node resolve the WIT imports
// (`courier:plugin/outbound@0.1.0`, `courier:plugin/log@0.1.0`) to functions
// that hand everything to the MockHost in use; import the plugin after it,
// with `await import('./app.js')`. `withMockHost(body)` runs `body(host)`
// with a MockHost standing in for the host: each request a call sends must
// match an Expect given to `host.expect`, which answers it with its Reply;
// what was sent is kept (`host.requests()`). A request that matches no
// expectation fails at once, naming the request and why each remaining
// expectation did not match (and fails the test even if the plugin catches
// it); an expectation still unused when `body` returns fails it too.
//
//   import { Expect, Reply, withMockHost } from '../../guest-sdk/js/testing.js';
//   const { integration } = await import('./app.js');
//   test('posts', () => withMockHost((host) => {
//     host.expect(Expect.post('/chat.postMessage').connection('slack')
//       .reply(Reply.json(200, { ok: true, channel: 'C1', ts: '1.5' })));
//     assert.deepEqual(JSON.parse(integration.invoke('post_message', '{"channel":"C1","text":"hi"}')), ...);
//   }));
//
// The double answers as the plugin's code sees the host; it does not apply
// the host's policy, credentials, limits or pagination (a paginated request
// gets its Reply: the items of every page).

import { register } from 'node:module';
import { randomUUID } from 'node:crypto';

const INSTALLED = Symbol.for('courier.testing.MockHost');

// The loader hooks: each WIT import is a module of functions that forward
// to the installed MockHost.
const IMPORTS = {
  'courier:plugin/outbound@0.1.0': ['send', 'sendAll', 'boundConnections', 'newIdempotencyKey'],
  'courier:plugin/log@0.1.0': ['log'],
};
const hooks = `
const IMPORTS = ${JSON.stringify(IMPORTS)};
export async function resolve(specifier, context, next) {
  return specifier in IMPORTS ? { url: specifier, shortCircuit: true } : next(specifier, context);
}
export async function load(url, context, next) {
  if (!(url in IMPORTS)) return next(url, context);
  const host = "globalThis[Symbol.for('courier.testing.MockHost')]";
  const source = IMPORTS[url].map((name) => 'export function ' + name + '(...args) { '
    + 'if (!' + host + ') throw new Error("no host outside a component: send within withMockHost"); '
    + 'return ' + host + '.' + name + '(...args); }').join('\\n');
  return { format: 'module', source, shortCircuit: true };
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);

/** Whether two JSON values are equal (object key order aside). */
function sameJson(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length
      && a.every((v, i) => sameJson(v, b[i]));
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => k in b && sameJson(a[k], b[k]));
  }
  return a === b;
}

/** A request as the plugin handed it to the host: `method` (`'GET'`), `url`
 * as written, `query` and `headers` ([name, value] pairs), `body` (the WIT
 * body: `{ tag: 'json', val }`, ...), `connection`, and `wit`, the whole WIT
 * record (retry, pagination, idempotency key, timeout, cache). */
export class SentRequest {
  constructor(wit) {
    this.wit = wit;
    this.method = wit.method.toUpperCase();
    this.url = wit.url;
    this.query = wit.query;
    this.headers = wit.headers;
    this.body = wit.body;
    this.connection = wit.connection;
  }
  /** The first header named `name` (any case), or undefined. */
  header(name) {
    return this.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1];
  }
  /** The JSON body parsed, or undefined if the body is not JSON. */
  json() { return this.body.tag === 'json' ? JSON.parse(this.body.val) : undefined; }
  toString() { return `${this.method} ${this.url} ${JSON.stringify(this.wit)}`; }
}

/** The host's answer to an expected request: a response, or a send error
 * (`Reply.error`) as the host returns when it sends nothing. */
export class Reply {
  constructor(status) {
    this.status = status;
    this.headers = [];
    this.content = new Uint8Array();
    this.failure = undefined;
  }
  /** A JSON response (`content-type: application/json`). */
  static json(status, value) {
    return new Reply(status).header('content-type', 'application/json').body(JSON.stringify(value));
  }
  /** A text response (`content-type: text/plain; charset=utf-8`). */
  static text(status, text) {
    return new Reply(status).header('content-type', 'text/plain; charset=utf-8').body(text);
  }
  /** The host sends nothing and returns the WIT send error `kind`
   * (`denied`, `timeout`, `invalid-request`, ...) with `val` (a message;
   * for `timeout` the phase, `'total'`). */
  static error(kind, val) {
    const reply = new Reply(0);
    reply.failure = { tag: kind, val };
    return reply;
  }
  /** Adds a response header. */
  header(name, value) { this.headers.push([name, value]); return this; }
  /** The response body (text or bytes). */
  body(content) {
    this.content = typeof content === 'string' ? new TextEncoder().encode(content) : Uint8Array.from(content);
    return this;
  }
  /** The WIT response to `request`, or throws the send error as
   * componentize-js does (an error with the `payload`). */
  answer(request) {
    if (this.failure) throw Object.assign(new Error(`send error ${this.failure.tag}`), { payload: this.failure });
    return { status: this.status, headers: [...this.headers], body: this.content, finalUrl: request.url };
  }
}

/** A request the test expects, and the host's answer to it (`200` with no
 * body unless `reply` says otherwise, once unless `times` says otherwise).
 * Method and URL must be equal; every further check must hold. */
export class Expect {
  constructor(method, url) {
    this.method = method.toUpperCase();
    this.url = url;
    this.checks = [];
    this.response = new Reply(200);
    this.remaining = 1;
  }
  static get(url) { return new Expect('GET', url); }
  static post(url) { return new Expect('POST', url); }
  /** The request carries the query pair `name=value` (among others). */
  query(name, value) {
    return this.matching(`query \`${name}=${value}\``, (r) => r.query.some(([n, v]) => n === name && v === value));
  }
  /** The request's query pairs are exactly these, in this order. */
  queryExactly(pairs) {
    return this.matching(`query exactly ${JSON.stringify(pairs)}`, (r) => sameJson(r.query, pairs));
  }
  /** The request has the header `name` (any case) with this value. */
  header(name, value) {
    return this.matching(`header \`${name}: ${value}\``,
      (r) => r.headers.some(([n, v]) => n.toLowerCase() === name.toLowerCase() && v === value));
  }
  /** The request names this connection. */
  connection(name) { return this.matching(`connection \`${name}\``, (r) => r.connection === name); }
  /** The body is JSON equal to `value` (key order aside). */
  json(value) {
    return this.matching(`JSON body ${JSON.stringify(value)}`, (r) => r.body.tag === 'json' && sameJson(r.json(), value));
  }
  /** The body is a form of exactly these pairs, in this order. */
  form(pairs) {
    return this.matching(`form body ${JSON.stringify(pairs)}`, (r) => r.body.tag === 'form' && sameJson(r.body.val, pairs));
  }
  /** Any other check on the SentRequest, described by `what` in failures. */
  matching(what, test) { this.checks.push([what, test]); return this; }
  /** How the host answers. */
  reply(reply) { this.response = reply; return this; }
  /** Expects `times` such requests (each answered the same). */
  times(times) { this.remaining = times; return this; }
  /** Why `request` does not match, or undefined. */
  mismatch(request) {
    if (request.method !== this.method || request.url !== this.url) return `expected ${this.method} ${this.url}`;
    const failed = this.checks.filter(([, test]) => !test(request)).map(([what]) => what);
    return failed.length ? `${this}: not ${failed.join(', not ')}` : undefined;
  }
  toString() { return [this.method, this.url, ...this.checks.map(([what]) => `with ${what}`)].join(' '); }
}

/** The host, stood in for while installed (see `withMockHost`). */
export class MockHost {
  constructor() {
    this.expected = [];
    this.sent = [];
    this.bound = [];
    this.logs = [];
    this.failure = undefined;
  }
  /** Reports `connection` as bound to the step (`bound()`). */
  bind(connection) { this.bound.push(connection); return this; }
  /** Expects a request; requests are matched against the expectations in
   * the order given, skipping those used up. */
  expect(expectation) { this.expected.push(expectation); return this; }
  /** Every SentRequest so far, in order. */
  requests() { return [...this.sent]; }
  /** Throws if a request matched nothing or an expectation is not used up. */
  verify() {
    if (this.failure) throw new Error(this.failure);
    const unused = this.expected.filter((e) => e.remaining > 0);
    if (unused.length) throw new Error(`expected requests that were never sent:\n  ${unused.join('\n  ')}`);
  }

  // What the WIT imports forward to.
  send(wit) {
    const request = new SentRequest(wit);
    this.sent.push(request);
    const waiting = this.expected.filter((e) => e.remaining > 0);
    const found = waiting.find((e) => e.mismatch(request) === undefined);
    if (found) {
      found.remaining -= 1;
      return found.response.answer(request);
    }
    const why = waiting.map((e) => `\n  ${e.mismatch(request)}`).join('') || '\n  (none is left)';
    this.failure = `unexpected request ${request}; the expectations left:${why}`;
    throw new Error(this.failure);
  }
  sendAll(wits) {
    return wits.map((wit) => {
      try {
        return { tag: 'ok', val: this.send(wit) };
      } catch (e) {
        if (e.payload === undefined) throw e;
        return { tag: 'err', val: e.payload };
      }
    });
  }
  boundConnections() { return [...this.bound]; }
  newIdempotencyKey() { return randomUUID(); }
  log(level, message) { this.logs.push([level, message]); }
}

/** Runs `body(host)` with a new MockHost standing in for the host, then
 * verifies it (see the module comment); returns what `body` returns. */
export function withMockHost(body) {
  if (globalThis[INSTALLED]) throw new Error('a MockHost is already installed');
  const host = new MockHost();
  globalThis[INSTALLED] = host;
  try {
    let result;
    try {
      result = body(host);
    } catch (e) {
      // An unexpected request the plugin turned into its own failure.
      throw host.failure ? new Error(host.failure, { cause: e }) : e;
    }
    host.verify();
    return result;
  } finally {
    delete globalThis[INSTALLED];
  }
}
