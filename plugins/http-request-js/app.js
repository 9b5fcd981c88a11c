// The generic "External API Request" step in JavaScript: the same call
// `request`, input and output as the Rust `http-request` plugin (for the
// fields in its input schema), sent by the host through the operator's
// `default` connection when the step binds it.

import {
  Auth, Call, Connection, HttpError, InvalidInput, Plugin, Request, bound, exportPlugin,
} from '../../guest-sdk/js/courier-sdk.js';

const CONNECTION = 'default';

const SCALAR = { type: ['string', 'number', 'boolean'] };
const INPUT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', description: "An absolute http(s) URL, or a path relative to the default connection's base URL." },
    method: { type: 'string', description: 'The HTTP method, in any case (default GET).' },
    params: {
      description: 'Query parameters: an object or a list of [name, value] pairs.',
      anyOf: [
        { type: 'object', additionalProperties: { anyOf: [SCALAR, { type: 'array', items: SCALAR }] } },
        { type: 'array', items: { type: 'array', prefixItems: [{ type: 'string' }, SCALAR], minItems: 2, maxItems: 2 } },
      ],
    },
    headers: {
      description: 'Request headers: an object or a list of [name, value] pairs.',
      anyOf: [
        { type: 'object', additionalProperties: { type: 'string' } },
        { type: 'array', items: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 2 } },
      ],
    },
    body: { description: 'The request body, encoded as body_type says.' },
    body_type: { enum: ['json', 'form', 'text', 'raw', 'xml'], description: 'How to encode body (default json).' },
    encoding: { enum: ['utf8', 'base64', 'hex'], description: 'How the string of a raw body is written (default utf8).' },
    timeout: { type: 'number', description: 'Seconds allowed for the request (default 30).' },
    follow_location: { type: 'boolean', description: 'Whether to follow redirects (default true).' },
  },
};

/** Sends an HTTP request and returns its status, headers and body; a status
 * outside 2xx fails the step with outcome http-error, carrying the output. */
function request(input) {
  const req = build(input);
  if (bound().includes(CONNECTION)) req.connection(CONNECTION);
  const out = output(req.send());
  if (out.status >= 200 && out.status < 300) return out;
  throw new HttpError(out.status, `upstream answered ${out.status}`, out);
}

/** The request the input describes, without a connection. */
function build(input) {
  const req = new Request(input.method ?? 'GET', input.url)
    .timeout(input.timeout ?? 30)
    .followRedirects(input.follow_location ?? true);
  for (const [name, value] of flatten(input.params ?? {})) req.query(name, value);
  const headers = pairs(input.headers ?? {});
  const body = input.body;
  if (body !== undefined && body !== null) {
    const bodyType = input.body_type ?? 'json';
    if (bodyType === 'json') {
      req.json(body);
    } else if (bodyType === 'form') {
      req.form(flatten(body));
    } else if (typeof body !== 'string') {
      throw new InvalidInput(`body does not suit body_type ${bodyType}: expected a string`);
    } else if (bodyType === 'text') {
      req.text(body);
    } else if (bodyType === 'xml') {
      req.xml(body);
    } else {
      const contentType = takeHeader(headers, 'content-type') ?? 'application/octet-stream';
      req.bytes(contentType, decode(body, input.encoding ?? 'utf8'));
    }
  }
  for (const [name, value] of headers) req.header(name, value);
  return req;
}

/** [name, value] pairs from an object (in order) or a list of pairs. */
function pairs(value) {
  return Array.isArray(value) ? value.map((p) => [p[0], p[1]]) : Object.entries(value);
}

/** One [name, text] pair per scalar, a list under one name repeated. */
function flatten(value) {
  if (typeof value !== 'object') throw new InvalidInput('expected an object or a list of [name, value] pairs');
  return pairs(value).flatMap(([name, v]) =>
    (Array.isArray(v) ? v : [v]).map((s) => [name, typeof s === 'string' ? s : JSON.stringify(s)]));
}

/** Removes every header named `name` (any case); returns the last value. */
function takeHeader(headers, name) {
  const found = headers.filter(([n]) => n.toLowerCase() === name);
  const kept = headers.filter(([n]) => n.toLowerCase() !== name);
  headers.splice(0, headers.length, ...kept);
  return found.length ? found[found.length - 1][1] : undefined;
}

/** The bytes a raw body's string stands for. */
function decode(text, encoding) {
  if (encoding === 'base64') {
    let binary;
    try { binary = atob(text); } catch (e) { throw new InvalidInput(`body: invalid base64: ${e}`); }
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }
  if (encoding === 'hex') {
    if (text.length % 2 || /[^0-9a-fA-F]/.test(text)) throw new InvalidInput('body: invalid hex');
    return Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
  }
  return new TextEncoder().encode(text);
}

/** The response as the step's output, as the Rust plugin writes it. */
function output(response) {
  const headers = {};
  for (const [n, value] of response.headers) {
    const name = n.toLowerCase();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  const contentType = (response.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
  const isJson = contentType === 'application/json' || contentType.endsWith('+json');
  let body;
  let bodyBase64 = false;
  try {
    body = response.text();
  } catch {
    body = btoa(String.fromCharCode(...response.body));
    bodyBase64 = true;
  }
  if (isJson && !bodyBase64) {
    try { body = JSON.parse(body); } catch { /* kept as text */ }
  }
  return { status: response.status, headers, body, body_base64: bodyBase64, url: response.finalUrl };
}

export const integration = exportPlugin(
  new Plugin('http-request-js', '0.1.0')
    .description('External API Request (JavaScript): sends one HTTP request and returns the response')
    .allowHost('https://*:*')
    .allowHost('http://*:*')
    .connection(new Connection(CONNECTION)
      .description('The API to call: the operator sets its base URL and authentication')
      .auth(Auth.operatorDefined))
    .call(Call.action('request', request, INPUT_SCHEMA).title('External API Request')),
);
