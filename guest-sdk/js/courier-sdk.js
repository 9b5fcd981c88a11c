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

import { send, boundConnections } from 'courier:plugin/outbound@0.1.0';
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

/** The host could not send a request; `reason` is the WIT send-error
 * (`reason.tag` names it: denied, timeout, connect, ...). */
export class SendFailed extends StepError {
  constructor(reason) {
    super(`${reason.tag}: ${reason.val ?? ''}`);
    this.reason = reason;
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
  /** Send on the plugin's connection `name` (base URL, credentials). */
  connection(name) { this.wit.connection = name; return this; }
  timeout(seconds) {
    if (!(seconds > 0)) throw new InvalidInput('timeout: expected a positive number of seconds');
    this.wit.timeoutMs = Math.min(Math.floor(seconds * 1000) || 1, 2 ** 32 - 1);
    return this;
  }
  followRedirects(follow) { this.wit.followRedirects = Boolean(follow); return this; }
  /** Sends through the host; throws SendFailed when it cannot. A non-2xx
   * status is a Response, not an error. */
  send() {
    try {
      return new Response(send(this.wit));
    } catch (e) {
      throw new SendFailed(e.payload ?? { tag: 'other', val: String(e) });
    }
  }
}

/** Names of the plugin's connections the running step has bound. */
export function bound() { return boundConnections(); }

/** Writes to the step's log (trace, debug, info, warn or error). */
export function log(level, message) { hostLog(level, message); }

/** Connection authentication schemes (the operator holds the secrets). */
export const Auth = Object.freeze({
  none: { tag: 'none' },
  operatorDefined: { tag: 'operator-defined' },
  bearer: { tag: 'bearer' },
  basic: { tag: 'basic' },
});

/** A connection the plugin declares; the plugin sees only its name. */
export class Connection {
  constructor(name) {
    this.wit = {
      name, description: '', baseUrl: undefined, auth: Auth.none, authOrigins: [],
      sharedHeaders: [], sharedQuery: [], verifyCall: undefined,
      rate: { requests: undefined, perSecs: undefined, concurrent: undefined },
    };
  }
  description(text) { this.wit.description = text; return this; }
  baseUrl(url) { this.wit.baseUrl = url; return this; }
  auth(scheme) { this.wit.auth = scheme; return this; }
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
  /** A call that reads. */
  static data(name, handler, inputSchema, outputSchema) {
    return new Call(name, handler, 'data', inputSchema, outputSchema);
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

/** The `integration` export for `plugin`: `export const integration = exportPlugin(plugin)`. */
/** @returns {typeof import('courier:plugin/integration@0.1.0')} */
export function exportPlugin(plugin) {
  return {
    describe() { return plugin.wit; },
    invoke(call, input) {
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
