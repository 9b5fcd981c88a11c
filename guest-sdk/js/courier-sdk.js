// Courier's JavaScript guest SDK: the same shape as the Rust and Python SDKs
// (Plugin, Connection, Call, Request, typed StepErrors) over the WIT imports
// componentize-js links from `wit/`. A plugin module builds a Plugin and
// exports it as the `integration` interface:
//
//   import { Plugin, Call, Request, exportPlugin } from '../../guest-sdk/js/courier-sdk.js';
//   export const integration = exportPlugin(new Plugin('ping', '0.1.0')
//     .call(Call.data('ping', (input) => new Request('GET', input.url).send().json())));
//
// The host validates each call's input against its schema before the handler
// runs; the handler gets the parsed JSON and returns a JSON value or throws a
// StepError. Types of the WIT values: `guest-sdk/js/types/` (jco types).

import {
  send, sendAll as hostSendAll, boundConnections, newIdempotencyKey as hostKey,
} from 'courier:plugin/outbound@0.1.0';
import { log as hostLog } from 'courier:plugin/log@0.1.0';

/** @typedef {import('courier:plugin/types@0.1.0').StepError} WitStepError */
/** @typedef {import('courier:plugin/types@0.1.0').Request} WitRequest */
/** @typedef {import('courier:plugin/types@0.1.0').Method} WitMethod */

/** A step's failure, as the host reports it. */
export class StepError extends Error {
  /** @returns {WitStepError} */
  toWit() { return { tag: 'failed', val: this.message }; }
}

/** The input makes no sense (outcome invalid-input). */
export class InvalidInput extends StepError {
  /** @returns {WitStepError} */
  toWit() { return { tag: 'invalid-input', val: this.message }; }
}

/** The upstream answered with a failure status (outcome http-error);
 * `output` is still returned as the step's output. */
export class HttpError extends StepError {
  constructor(status, message, output) {
    super(message);
    this.status = status;
    this.output = output;
  }
  /** @returns {WitStepError} */
  toWit() {
    const output = this.output === undefined ? undefined : JSON.stringify(this.output);
    return { tag: 'http', val: { status: this.status, message: this.message, output } };
  }
}

// How the Rust SDK writes each send-error case and timeout phase.
const SEND_KINDS = {
  dns: 'DNS', tls: 'TLS', 'too-large': 'too large', 'invalid-request': 'invalid request',
  'circuit-open': 'circuit open',
};
const PHASES = { 'tls-handshake': 'TLS handshake', 'first-byte': 'first byte', 'step-deadline': 'step deadline' };

/** The host could not send a request; `reason` is the WIT send-error
 * (`kind`, its `tag`, names it: denied, timeout, invalid-request, ...). The
 * message reads as the Rust SDK's (`denied: ...`, `timed out (total)`). */
export class SendFailed extends StepError {
  constructor(reason) {
    super(reason.tag === 'timeout'
      ? `timed out (${PHASES[reason.val] ?? reason.val})`
      : `${SEND_KINDS[reason.tag] ?? reason.tag}: ${reason.val ?? ''}`);
    this.reason = reason;
    this.kind = reason.tag;
  }
  /** @returns {WitStepError} */
  toWit() { return { tag: 'send', val: this.reason }; }
}

/** Any other failure of the plugin's own logic (outcome error). */
export class Failed extends StepError {}

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'];

/** An upstream's answer: status, headers (pairs, as sent), body bytes. */
export class Response {
  constructor(wit) {
    this.status = wit.status;
    this.headers = wit.headers;
    this.body = wit.body;
    this.finalUrl = wit.finalUrl;
  }
  /** The first value of header `name` (any case), or undefined. */
  header(name) {
    const found = this.headers.find(([n]) => n.toLowerCase() === name.toLowerCase());
    return found && found[1];
  }
  isSuccess() { return this.status >= 200 && this.status < 300; }
  text() { return new TextDecoder('utf-8', { fatal: true }).decode(this.body); }
  json() {
    try { return JSON.parse(this.text()); } catch (e) { throw new Failed(`the response body is not JSON: ${e}`); }
  }
  /** The response itself if its status is 2xx, else throws HttpError without output. */
  errorForStatus() {
    if (!this.isSuccess()) throw new HttpError(this.status, `upstream answered ${this.status}`);
    return this;
  }
}

/** Seconds as the WIT's u32 milliseconds (capped). */
const millis = (seconds) => Math.min(Math.floor(seconds * 1000), 2 ** 32 - 1);

/** One part of a `multipart/form-data` body: a text field, or a file when
 * it has a file name. */
export class FormPart {
  constructor(name, data) {
    this.wit = { name, filename: undefined, contentType: undefined, data: Uint8Array.from(data) };
  }
  /** A text field. */
  static text(name, value) { return new FormPart(name, new TextEncoder().encode(value)); }
  /** A file part (`application/octet-stream` unless `contentType` says otherwise). */
  static file(name, filename, data) { return new FormPart(name, data).filename(filename); }
  /** Sends the part as a file named `filename`. */
  filename(filename) { this.wit.filename = filename; return this; }
  /** Sets the part's content type. */
  contentType(contentType) { this.wit.contentType = contentType; return this; }
}

/** How the host retries a request that failed in a retryable way (the WIT
 * retry-policy: a listed status, or a failed exchange; after the bytes may
 * have reached the server only a safe method or a request with an
 * idempotency key). */
export class RetryPolicy {
  /** Up to `maxAttempts` attempts in all (the first included), with a
   * backoff from 0.2 s up to 5 s, retrying statuses 429, 502, 503 and 504. */
  constructor(maxAttempts) {
    /** @type {import('courier:plugin/types@0.1.0').RetryPolicy} */
    this.wit = { maxAttempts, initialBackoffMs: 200, maxBackoffMs: 5000, retryOnStatus: Uint16Array.of(429, 502, 503, 504) };
  }
  /** The same as `new RetryPolicy(maxAttempts)`, as the Rust SDK spells it. */
  static attempts(maxAttempts) { return new RetryPolicy(maxAttempts); }
  /** The first delay in seconds (doubled each time, with jitter) and the longest one. */
  backoff(initial, max) {
    this.wit.initialBackoffMs = millis(initial);
    this.wit.maxBackoffMs = millis(max);
    return this;
  }
  /** The response statuses that are retried. */
  onStatus(statuses) { this.wit.retryOnStatus = Uint16Array.from(statuses); return this; }
}

/** How the host follows an API's pages (the WIT pagination): it sends page
 * after page and answers with one response whose body is the JSON array of
 * every page's items; its `courier-pagination` header says why paging ended. */
export class Pagination {
  constructor(style) {
    this.wit = { style, itemsPath: '', limitParam: undefined, pageSize: undefined, maxPages: undefined };
  }
  /** The next cursor at `path` in each page's JSON, sent in the query parameter `param`. */
  static cursor(path, param) { return new Pagination({ tag: 'cursor', val: { path, param } }); }
  /** Numbered pages from 1, sent in the query parameter `param`. */
  static page(param) { return new Pagination({ tag: 'page', val: param }); }
  /** Item offsets from 0, sent in the query parameter `param`. */
  static offset(param) { return new Pagination({ tag: 'offset', val: param }); }
  /** The `Link` response header's `rel="next"` URL. */
  static link() { return new Pagination({ tag: 'link' }); }
  /** The path to the items array in each page's JSON (`data`, `result.items`). */
  items(path) { this.wit.itemsPath = path; return this; }
  /** Sends `size` in the query parameter `param` (`limit`, `per_page`); with
   * numbered pages and offsets a shorter page is the last (`param`
   * undefined: the size only ends paging, it is not sent). */
  pageSize(param, size) { this.wit.limitParam = param; this.wit.pageSize = size; return this; }
  /** At most `pages` pages (the host's own cap applies as well). */
  maxPages(pages) { this.wit.maxPages = pages; return this; }
}

/** An outbound request, sent by the host, which adds credentials, checks
 * policy and enforces limits. */
export class Request {
  constructor(method, url) {
    const m = /** @type {WitMethod} */ (String(method).toLowerCase());
    if (!METHODS.includes(m)) throw new InvalidInput(`method: unsupported HTTP method \`${method}\``);
    /** @type {WitRequest} */
    this.wit = {
      method: m, url, query: [], headers: [], body: { tag: 'none' }, connection: undefined,
      timeoutMs: undefined, followRedirects: true, retry: undefined, idempotencyKey: undefined,
      pagination: undefined, cacheTtlMs: undefined,
    };
  }
  static get(url) { return new Request('GET', url); }
  static post(url) { return new Request('POST', url); }
  static put(url) { return new Request('PUT', url); }
  static patch(url) { return new Request('PATCH', url); }
  static delete(url) { return new Request('DELETE', url); }
  query(name, value) { this.wit.query.push([name, String(value)]); return this; }
  header(name, value) { this.wit.headers.push([name, value]); return this; }
  /** A JSON body (any JSON value). */
  json(value) { this.wit.body = { tag: 'json', val: JSON.stringify(value) }; return this; }
  /** An `application/x-www-form-urlencoded` body from [name, value] pairs. */
  form(pairs) { this.wit.body = { tag: 'form', val: pairs.map(([n, v]) => [n, String(v)]) }; return this; }
  text(text) { this.wit.body = { tag: 'text', val: text }; return this; }
  xml(xml) { this.wit.body = { tag: 'xml', val: xml }; return this; }
  bytes(contentType, data) {
    this.wit.body = { tag: 'bytes', val: { contentType, data: Uint8Array.from(data) } };
    return this;
  }
  /** A `multipart/form-data` body of FormParts. */
  multipart(parts) { this.wit.body = { tag: 'multipart', val: parts.map((p) => p.wit) }; return this; }
  /** A GraphQL operation, sent as a JSON POST body; `variables` must be an object. */
  graphql(query, variables, operationName) {
    const vars = variables === undefined || variables === null ? undefined : JSON.stringify(variables);
    this.wit.body = { tag: 'graphql', val: { query, variables: vars, operationName: operationName ?? undefined } };
    return this;
  }
  /** Send on the plugin's connection `name` (base URL, credentials). */
  connection(name) { this.wit.connection = name; return this; }
  timeout(seconds) {
    if (!(seconds > 0)) throw new InvalidInput('timeout: expected a positive number of seconds');
    this.wit.timeoutMs = Math.min(Math.floor(seconds * 1000) || 1, 2 ** 32 - 1);
    return this;
  }
  followRedirects(follow) { this.wit.followRedirects = Boolean(follow); return this; }
  /** Retries on failure as the RetryPolicy says; the host waits as the
   * upstream's `Retry-After` or rate-limit headers say, else with jittered
   * exponential backoff, never past the step deadline. */
  retry(policy) { this.wit.retry = policy.wit; return this; }
  /** Sent as `Idempotency-Key`, the same on every attempt; makes a POST or
   * PATCH retryable after its bytes may have reached the server. */
  idempotencyKey(key) { this.wit.idempotencyKey = key; return this; }
  /** Sends a fresh key from the host (`newIdempotencyKey`). */
  generatedIdempotencyKey() { return this.idempotencyKey(newIdempotencyKey()); }
  /** Follows the API's pages as the Pagination says. */
  paginate(pagination) { this.wit.pagination = pagination.wit; return this; }
  /** Lets the host answer this GET or HEAD from its response cache for up to `seconds`. */
  cache(seconds) { this.wit.cacheTtlMs = millis(seconds); return this; }
  /** Sends through the host; throws SendFailed when it cannot. A non-2xx
   * status is a Response, not an error. */
  send() {
    try {
      return new Response(send(this.wit));
    } catch (e) {
      // componentize-js throws the result's `err` as an error with `payload`.
      if (e?.payload === undefined) throw e;
      throw new SendFailed(e.payload);
    }
  }
}

/** Sends the Requests concurrently (within the step's limit) and returns one
 * result per request, in order: a Response, or the SendFailed (not thrown)
 * for a request the host could not send. One failure does not cancel the
 * others. */
export function sendAll(requests) {
  return hostSendAll(requests.map((r) => r.wit))
    .map((r) => (r.tag === 'ok' ? new Response(r.val) : new SendFailed(r.val)));
}

/** A fresh idempotency key from the host: a random version 4 UUID. */
export function newIdempotencyKey() { return hostKey(); }

/** Names of the plugin's connections the running step has bound. */
export function bound() { return boundConnections(); }

/** Writes to the step's log (trace, debug, info, warn or error). */
export function log(level, message) { hostLog(level, message); }

/** @typedef {import('courier:plugin/types@0.1.0').AuthScheme} WitAuthScheme */
/** @typedef {import('courier:plugin/types@0.1.0').PlacementTarget} WitPlacementTarget */

/** Connection authentication schemes (the operator holds the secrets, the
 * plugin never sees them): the constants, or a scheme from a function. */
export const Auth = Object.freeze({
  /** @type {WitAuthScheme} */ none: { tag: 'none' },
  /** @type {WitAuthScheme} */ operatorDefined: { tag: 'operator-defined' },
  /** @type {WitAuthScheme} */ bearer: { tag: 'bearer' },
  /** @type {WitAuthScheme} */ basic: { tag: 'basic' },
  /** @type {WitAuthScheme} */ clientCertificate: { tag: 'client-certificate' },
  /** An API key (secret `key`) in the header `name`.
   * @param {string} name @returns {WitAuthScheme} */
  apiKeyHeader: (name) => ({ tag: 'api-key', val: { location: 'header', name } }),
  /** An API key (secret `key`) in the query parameter `name`.
   * @param {string} name @returns {WitAuthScheme} */
  apiKeyQuery: (name) => ({ tag: 'api-key', val: { location: 'query', name } }),
  /** The operator's secrets placed by the SecretPlacements.
   * @param {SecretPlacement[]} placements @returns {WitAuthScheme} */
  custom: (placements) => ({ tag: 'custom', val: placements.map((p) => p.wit) }),
  /** The OAuth 2 client credentials grant (defaults without `oauth2`).
   * @param {OAuth2} [oauth2] @returns {WitAuthScheme} */
  oauth2ClientCredentials: (oauth2 = new OAuth2()) => ({ tag: 'oauth2-client-credentials', val: oauth2.wit }),
  /** The OAuth 2 refresh token grant; a rotated refresh token is stored.
   * @param {OAuth2} [oauth2] @returns {WitAuthScheme} */
  oauth2RefreshToken: (oauth2 = new OAuth2()) => ({ tag: 'oauth2-refresh-token', val: oauth2.wit }),
  /** The OAuth 2 resource owner password grant.
   * @param {OAuth2} [oauth2] @returns {WitAuthScheme} */
  oauth2Password: (oauth2 = new OAuth2()) => ({ tag: 'oauth2-password', val: oauth2.wit }),
  /** A JWT the host signs.
   * @param {Jwt} jwt @returns {WitAuthScheme} */
  jwt: (jwt) => ({ tag: 'jwt', val: jwt.wit }),
});

/** One secret the host puts into a request after the plugin built it: the
 * operator's secret `secret` at `name`, written as `template` where
 * `{secret}` stands for the secret (`'Token {secret}'`). */
export class SecretPlacement {
  /** @param {WitPlacementTarget} target @param {string} name @param {string} template @param {string} secret */
  constructor(target, name, template, secret) { this.wit = { target, name, template, secret }; }
  /** In the request header `name`. */
  static header(name, template, secret) { return new SecretPlacement('header', name, template, secret); }
  /** In the query parameter `name`. */
  static query(name, template, secret) { return new SecretPlacement('query', name, template, secret); }
  /** In the field `name` of a form body. */
  static formField(name, template, secret) { return new SecretPlacement('form-field', name, template, secret); }
  /** In the top-level field `name` of a JSON object body. */
  static jsonField(name, template, secret) { return new SecretPlacement('json-field', name, template, secret); }
}

/** OAuth 2 settings for the API: no token URL, scopes or audience (the
 * operator provides what is needed), client authentication with HTTP Basic
 * until said otherwise. The operator may override each of them. */
export class OAuth2 {
  constructor() {
    /** @type {import('courier:plugin/types@0.1.0').Oauth2Scheme} */
    this.wit = { tokenUrl: undefined, scopes: [], audience: undefined, clientAuth: 'basic' };
  }
  /** The token endpoint. */
  tokenUrl(url) { this.wit.tokenUrl = url; return this; }
  /** Requests `scope` too. */
  scope(scope) { this.wit.scopes.push(scope); return this; }
  /** The `audience` parameter. */
  audience(audience) { this.wit.audience = audience; return this; }
  /** How the client authenticates at the token endpoint: `'basic'` or
   * `'body'` (`client_id` and `client_secret` in the form).
   * @param {import('courier:plugin/types@0.1.0').ClientAuth} how */
  clientAuth(how) { this.wit.clientAuth = how; return this; }
}

/** A JWT the host signs with `algorithm` (`'hs256'`, `'rs256'`, `'es256'`),
 * carrying `claims` (an object where `{now}` and `{exp}` are filled in),
 * valid for `lifetime` seconds; sent as a bearer token unless `tokenUrl` is set. */
export class Jwt {
  /** @param {import('courier:plugin/types@0.1.0').JwtAlgorithm} algorithm
   * @param {object} claims @param {number} lifetime */
  constructor(algorithm, claims, lifetime) {
    /** @type {import('courier:plugin/types@0.1.0').JwtScheme} */
    this.wit = {
      algorithm, claims: JSON.stringify(claims),
      lifetimeSecs: Math.min(Math.floor(lifetime), 2 ** 32 - 1), tokenUrl: undefined,
    };
  }
  /** Exchanges the JWT at `url` for an access token. */
  tokenUrl(url) { this.wit.tokenUrl = url; return this; }
}

/** A connection the plugin declares; the plugin sees only its name. */
export class Connection {
  constructor(name) {
    /** @type {import('courier:plugin/types@0.1.0').ConnectionSpec} */
    this.wit = {
      name, description: '', baseUrl: undefined, auth: Auth.none, authOrigins: [],
      sharedHeaders: [], sharedQuery: [], verifyCall: undefined,
      rate: { requests: undefined, perSecs: undefined, concurrent: undefined },
    };
  }
  /** What it connects to, for the people setting it up. */
  description(text) { this.wit.description = text; return this; }
  /** The default base URL of relative request URLs; the operator may
   * override it. Its origin is allowed as if given to `allowHost`. */
  baseUrl(url) { this.wit.baseUrl = url; return this; }
  /** The authentication scheme (Auth). @param {WitAuthScheme} scheme */
  auth(scheme) { this.wit.auth = scheme; return this; }
  /** A further origin (`https://host[:port]`) that may receive the credentials. */
  authOrigin(origin) { this.wit.authOrigins.push(origin); return this; }
  /** A non-secret header sent with every request on this connection. */
  sharedHeader(name, value) { this.wit.sharedHeaders.push([name, value]); return this; }
  /** A non-secret query pair sent with every request on this connection. */
  sharedQuery(name, value) { this.wit.sharedQuery.push([name, value]); return this; }
  /** The data call that checks the connection works. */
  verifyCall(call) { this.wit.verifyCall = call; return this; }
  /** At most `requests` requests in any window of `perSecs` seconds on one
   * credential, shared by every step of the host; the operator may narrow
   * it. Both at least 1, or the host refuses the manifest. */
  rate(requests, perSecs) { this.wit.rate.requests = requests; this.wit.rate.perSecs = perSecs; return this; }
  /** At most `requests` requests in flight at once on one credential; at
   * least 1, or the host refuses the manifest. */
  concurrent(requests) { this.wit.rate.concurrent = requests; return this; }
}

/** A call: a handler taking the parsed input and returning a JSON value,
 * with JSON Schemas for input and output. */
export class Call {
  constructor(name, handler, kind, inputSchema = true, outputSchema = true) {
    this.handler = handler;
    this.wit = {
      name, title: name, description: '', kind, idempotent: false,
      inputSchema: JSON.stringify(inputSchema), outputSchema: JSON.stringify(outputSchema),
    };
  }
  /** A call that reads (idempotent unless said otherwise). */
  static data(name, handler, inputSchema, outputSchema) {
    return new Call(name, handler, 'data', inputSchema, outputSchema).idempotent();
  }
  /** A call that changes something upstream. */
  static action(name, handler, inputSchema, outputSchema) {
    return new Call(name, handler, 'action', inputSchema, outputSchema);
  }
  title(title) { this.wit.title = title; return this; }
  description(text) { this.wit.description = text; return this; }
  idempotent(idempotent = true) { this.wit.idempotent = idempotent; return this; }
}

/** The plugin's manifest and its calls. */
export class Plugin {
  constructor(name, version) {
    this.wit = { name, version, description: '', allowedHosts: [], connections: [], calls: [] };
    this.handlers = new Map();
  }
  description(text) { this.wit.description = text; return this; }
  /** A host the plugin may reach, such as `https://api.example.com`. */
  allowHost(pattern) { this.wit.allowedHosts.push(pattern); return this; }
  connection(connection) { this.wit.connections.push(connection.wit); return this; }
  call(call) {
    this.wit.calls.push(call.wit);
    this.handlers.set(call.wit.name, call.handler);
    return this;
  }
}

// `courier build` calls this on the built component once, against imports
// that answer without a network, then snapshots the instance: every step's
// fresh instance starts with these paths already compiled. No manifest may
// declare the name, so no step can call it.
const WARM_UP_CALL = 'courier:warm-up';

function warmUp() {
  for (let i = 0; i < 8; i++) {
    const response = new Request('POST', 'https://warm-up.invalid/courier').query('q', 1)
      .header('accept', 'application/json').json({ warm: [1, 'up', null] })
      .send().errorForStatus();
    response.header('content-type');
    JSON.stringify(response.json());
    bound();
  }
  return '{}';
}

/** The `integration` export for `plugin`: `export const integration = exportPlugin(plugin)`. */
/** @returns {typeof import('courier:plugin/integration@0.1.0')} */
export function exportPlugin(plugin) {
  return {
    describe() { return plugin.wit; },
    invoke(call, input) {
      if (call === WARM_UP_CALL) return warmUp();
      const handler = plugin.handlers.get(call);
      try {
        if (!handler) throw new InvalidInput(`no call \`${call}\``);
        return JSON.stringify(handler(JSON.parse(input)));
      } catch (e) {
        // componentize-js returns a thrown value as the result's `err`.
        throw e instanceof StepError ? e.toWit() : { tag: 'failed', val: String(e) };
      }
    },
  };
}
