/// <reference path="./courier-plugin-types.d.ts" />
declare module 'courier:plugin/outbound@0.1.0' {
  /**
   * Sends one request and waits for its response.
   * 
   * The host resolves the connection, joins the URL, checks policy (scheme,
   * host, port, every resolved address), injects credentials for the
   * connection's origins only, sends, follows redirects if asked, enforces
   * size and time limits, and scrubs secrets from the response. With a
   * `retry` policy it sends again as `retry-policy` describes, with the
   * same `Idempotency-Key`, and answers with the last attempt's result.
   * An origin whose circuit breaker is open gets no request
   * (`circuit-open`). A request on a connection with a rate budget
   * waits for room within the step deadline, or fails with `limit`
   * without being sent. With `pagination` it sends page after page, each
   * as above, and answers with every page's items (see `pagination`).
   * Any failure is a `send-error`; a non-2xx status is a response, not
   * an error.
   */
  export function send(request: Request): Response;
  /**
   * Sends a batch concurrently, within the step's concurrency limit, and
   * returns one result per request in input order. Each request is checked
   * like `send`; one failure does not cancel the others.
   */
  export function sendAll(requests: Array<Request>): Array<Result<Response, SendError>>;
  /**
   * Names of the plugin's declared connections that the running step has
   * bound (names only: no settings, no secrets). A request naming a declared
   * connection that is not bound fails with `credential`, so a plugin with an
   * optional connection asks here first.
   */
  export function boundConnections(): Array<string>;
  /**
   * A fresh idempotency key: 128 random bits from the host's secure
   * random source, as a UUID (version 4, lowercase, 36 characters). Put
   * it in `request.idempotency-key` so the upstream can recognize a
   * retried request. Each call returns a new key; to keep one key for a
   * request's attempts the host resends the request's own key, and to
   * keep one across steps the plugin derives it from its input instead.
   * Never fails.
   */
  export function newIdempotencyKey(): string;
  export type Request = import('courier:plugin/types@0.1.0').Request;
  export type Response = import('courier:plugin/types@0.1.0').Response;
  export type SendError = import('courier:plugin/types@0.1.0').SendError;
  export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };
}
