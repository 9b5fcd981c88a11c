// The generic "External API Request" step in JavaScript: the same call
// `request`, input and output as the Rust `http-request` plugin (for the
// fields in its input schema), sent by the host through the operator's
// `default` connection when the step binds it.

import {
  Auth, Call, Connection, FormPart, HttpError, InvalidInput, Pagination, Plugin, Request,
  RetryPolicy, bound, exportPlugin,
} from '../../guest-sdk/js/courier-sdk.js';

const CONNECTION = 'default';

const SCALAR = { type: ['string', 'number', 'boolean'] };
/** Each paginate field naming a query parameter, with the `type` it belongs to. */
const PAGINATE_NAMES = {
  cursor_path_in_response: 'cursor', cursor_name_in_request: 'cursor',
  page_name_in_request: 'page', offset_name_in_request: 'offset',
};
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
    body_type: {
      enum: ['json', 'form', 'text', 'raw', 'xml', 'graphql', 'multipart'],
      description: 'How to encode body (default json).',
    },
    encoding: { enum: ['utf8', 'base64', 'hex'], description: 'How the string of a raw body is written (default utf8).' },
    timeout: { type: 'number', description: 'Seconds allowed for the request (default 30).' },
    follow_location: { type: 'boolean', description: 'Whether to follow redirects (default true).' },
    retry: {
      type: 'object',
      additionalProperties: false,
      description: "Retries of the request (as the Rust plugin's `retry`).",
      properties: {
        attempts: { type: 'integer', minimum: 1 },
        backoff: {
          type: 'object', additionalProperties: false,
          properties: { initial: { type: 'number' }, max: { type: 'number' } },
        },
        statuses: { type: 'array', items: { type: 'integer' } },
      },
    },
    idempotency_key: {
      type: ['string', 'boolean'],
      description: 'Sent as Idempotency-Key: a string, or true for a key from the host.',
    },
    paginate: {
      type: 'object',
      additionalProperties: false,
      required: ['type'],
      description: "Follow the API's pages (as the Rust plugin's `paginate`).",
      properties: {
        type: { enum: ['cursor', 'page', 'offset', 'link'] },
        ...Object.fromEntries(Object.keys(PAGINATE_NAMES).map((name) => [name, { type: 'string' }])),
        response_path: { type: 'string' },
        limit_name_in_request: { type: 'string' },
        limit: { type: 'integer', minimum: 1 },
        max_pages: { type: 'integer', minimum: 1 },
      },
    },
    cache: {
      type: 'object',
      additionalProperties: false,
      required: ['ttl'],
      properties: { ttl: { type: 'number' } },
      description: 'Let the host answer a GET or HEAD from its response cache.',
    },
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
  if (input.retry) {
    const backoff = input.retry.backoff ?? {};
    req.retry(RetryPolicy.attempts(input.retry.attempts ?? 3)
      .backoff(seconds(backoff.initial ?? 0.2, 'retry.backoff.initial'), seconds(backoff.max ?? 5, 'retry.backoff.max'))
      .onStatus(input.retry.statuses ?? [429, 502, 503, 504]));
  }
  if (input.cache) {
    if (!(input.cache.ttl > 0)) throw new InvalidInput('cache.ttl: expected a positive number of seconds');
    req.cache(input.cache.ttl);
  }
  if (input.paginate) req.paginate(pagination(input.paginate));
  if (input.idempotency_key === true) req.generatedIdempotencyKey();
  else if (typeof input.idempotency_key === 'string') req.idempotencyKey(input.idempotency_key);
  for (const [name, value] of flatten(input.params ?? {})) req.query(name, value);
  const headers = pairs(input.headers ?? {});
  const body = input.body;
  if (body !== undefined && body !== null) {
    const bodyType = input.body_type ?? 'json';
    if (bodyType === 'json') {
      req.json(body);
    } else if (bodyType === 'form') {
      req.form(flatten(body));
    } else if (bodyType === 'graphql') {
      if (typeof body?.query !== 'string') throw new InvalidInput('body does not suit body_type graphql: expected an object with a query');
      req.graphql(body.query, body.variables, body.operation_name);
    } else if (bodyType === 'multipart') {
      if (!Array.isArray(body)) throw new InvalidInput('body does not suit body_type multipart: expected a list of parts');
      req.multipart(body.map(formPart));
    } else if (typeof body !== 'string') {
      throw new InvalidInput(`body does not suit body_type ${bodyType}: expected a string`);
    } else if (bodyType === 'text') {
      req.text(body);
    } else if (bodyType === 'xml') {
      req.xml(body);
    } else {
      const contentType = takeHeader(headers, 'content-type') ?? 'application/octet-stream';
      req.bytes(contentType, decode(body, input.encoding ?? 'utf8', 'body'));
    }
  }
  for (const [name, value] of headers) req.header(name, value);
  return req;
}

/** A number of seconds, 0 or more. */
function seconds(value, field) {
  if (!(value >= 0)) throw new InvalidInput(`${field}: expected a number of seconds, 0 or more`);
  return value;
}

/** The host's pagination for the input's `paginate`; a name that belongs to
 * another `type` is refused. */
function pagination(p) {
  for (const [field, owner] of Object.entries(PAGINATE_NAMES)) {
    if (field in p && owner !== p.type) throw new InvalidInput(`paginate.${field}: does not apply to this \`type\``);
  }
  let pages;
  if (p.type === 'cursor') {
    for (const field of ['cursor_path_in_response', 'cursor_name_in_request']) {
      if (!(field in p)) throw new InvalidInput(`paginate.${field}: required with \`type\` cursor`);
    }
    pages = Pagination.cursor(p.cursor_path_in_response, p.cursor_name_in_request);
  } else if (p.type === 'page') {
    pages = Pagination.page(p.page_name_in_request ?? 'page');
  } else if (p.type === 'offset') {
    pages = Pagination.offset(p.offset_name_in_request ?? 'offset');
  } else {
    pages = Pagination.link();
  }
  pages.items(p.response_path ?? '');
  if ('limit_name_in_request' in p) {
    if (!('limit' in p)) throw new InvalidInput('paginate.limit: required with `limit_name_in_request`');
    pages.pageSize(p.limit_name_in_request, p.limit);
  } else if ('limit' in p) {
    pages.pageSize(undefined, p.limit);
  }
  if ('max_pages' in p) pages.maxPages(p.max_pages);
  return pages;
}

/** The SDK's form part for a multipart input part. */
function formPart(part) {
  if (typeof part?.name !== 'string' || typeof part.value !== 'string') {
    throw new InvalidInput('body does not suit body_type multipart: expected parts with a name and a value');
  }
  const form = new FormPart(part.name, decode(part.value, part.encoding ?? 'utf8', `multipart part \`${part.name}\``));
  if (part.filename != null) form.filename(part.filename);
  if (part.content_type != null) form.contentType(part.content_type);
  return form;
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

/** The bytes a string stands for (`what` names it in an error). */
function decode(text, encoding, what) {
  if (encoding === 'base64') {
    let binary;
    try { binary = atob(text); } catch (e) { throw new InvalidInput(`${what}: invalid base64: ${e}`); }
    return Uint8Array.from(binary, (c) => c.charCodeAt(0));
  }
  if (encoding === 'hex') {
    if (text.length % 2 || /[^0-9a-fA-F]/.test(text)) throw new InvalidInput(`${what}: invalid hex`);
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
