declare module 'courier:plugin/types@0.1.0' {
  /**
   * An ordered list of name/value pairs. Order and repeated names are kept
   * exactly as given (`a=1&a=2` stays two pairs).
   */
  export type Pairs = Array<[string, string]>;
  /**
   * HTTP method of an outbound request. Anything else cannot be expressed,
   * so the host never sends an unknown method.
   * # Variants
   * 
   * ## `"get"`
   * 
   * GET: read a resource. Sent without a body.
   * ## `"head"`
   * 
   * HEAD: like GET, the response has no body.
   * ## `"post"`
   * 
   * POST: create or act.
   * ## `"put"`
   * 
   * PUT: replace a resource.
   * ## `"patch"`
   * 
   * PATCH: modify part of a resource.
   * ## `"delete"`
   * 
   * DELETE: remove a resource.
   * ## `"options"`
   * 
   * OPTIONS: ask what the resource allows.
   */
  export type Method = 'get' | 'head' | 'post' | 'put' | 'patch' | 'delete' | 'options';
  /**
   * One part of a `multipart/form-data` body.
   */
  export interface FormPart {
    /**
     * The form field name (`Content-Disposition: form-data; name=...`).
     */
    name: string,
    /**
     * A file name; when present the part is sent as a file.
     */
    filename?: string,
    /**
     * The part's content type; the host uses `text/plain` for text fields
     * and `application/octet-stream` for files when absent.
     */
    contentType?: string,
    /**
     * The part's bytes.
     */
    data: Uint8Array,
  }
  /**
   * A GraphQL operation; the host sends it as a JSON POST body
   * `{"query", "variables", "operationName"}`.
   */
  export interface GraphqlRequest {
    /**
     * The GraphQL document.
     */
    query: string,
    /**
     * Variables as a JSON object text; the host rejects text that is not a
     * JSON object with `invalid-request`.
     */
    variables?: string,
    /**
     * The operation to run when the document holds several.
     */
    operationName?: string,
  }
  /**
   * Bytes with the content type they are sent under.
   */
  export interface RawBody {
    /**
     * Sent as `Content-Type`.
     */
    contentType: string,
    /**
     * The bytes, sent as they are.
     */
    data: Uint8Array,
  }
  /**
   * A request body. The host encodes it and sets `Content-Type` itself;
   * a `Content-Type` header from the plugin overrides it for `text`, `xml`
   * and `json` only.
   */
  export type Body = BodyNone | BodyJson | BodyForm | BodyMultipart | BodyGraphql | BodyXml | BodyText | BodyBytes;
  /**
   * No body.
   */
  export interface BodyNone {
    tag: 'none',
  }
  /**
   * JSON text, sent as `application/json`. Text that is not valid JSON is
   * rejected with `invalid-request`.
   */
  export interface BodyJson {
    tag: 'json',
    val: string,
  }
  /**
   * `application/x-www-form-urlencoded` pairs; names such as
   * `metadata[order_id]` and repeated names are kept as given.
   */
  export interface BodyForm {
    tag: 'form',
    val: Pairs,
  }
  /**
   * `multipart/form-data` with text fields and file parts.
   */
  export interface BodyMultipart {
    tag: 'multipart',
    val: Array<FormPart>,
  }
  /**
   * A GraphQL operation, sent as a JSON POST.
   */
  export interface BodyGraphql {
    tag: 'graphql',
    val: GraphqlRequest,
  }
  /**
   * XML text, sent as `application/xml`.
   */
  export interface BodyXml {
    tag: 'xml',
    val: string,
  }
  /**
   * Plain text, sent as `text/plain; charset=utf-8`.
   */
  export interface BodyText {
    tag: 'text',
    val: string,
  }
  /**
   * Raw bytes with their content type.
   */
  export interface BodyBytes {
    tag: 'bytes',
    val: RawBody,
  }
  /**
   * How the host retries a request that failed in a retryable way.
   * 
   * What is retried: a status in `retry-on-status`; a failure before the
   * request was sent (`dns`, `connect`, `timeout(connect)`,
   * `timeout(tls-handshake)`); a failure after its bytes may have reached
   * the server (`protocol`, such as a reset, `timeout(first-byte)`,
   * `timeout(total)`). A status or a failure after sending is retried only
   * for a request that is safe to replay: GET, HEAD, OPTIONS; PUT or
   * DELETE in a call declared `idempotent`; any method with an
   * `idempotency-key`. A `circuit-open` refusal (nothing was sent) is
   * retried once the circuit's open time has passed, which the host
   * waits like an announced wait. Never retried: `denied`, `tls`,
   * `too-large`, `credential`, `limit`, `timeout(step-deadline)`.
   * 
   * Before each retry the host waits: what the upstream announced
   * (`Retry-After` in seconds or as an HTTP-date, `x-ratelimit-reset`
   * with `x-ratelimit-remaining: 0`, the IETF `RateLimit` and
   * `RateLimit-Policy` fields), else a random delay between 0 and
   * `initial-backoff-ms` doubled once per retry, at most `max-backoff-ms`
   * ("full jitter"). A wait longer than the host's cap (60 s by default)
   * or past the step deadline is not waited: the last response or error
   * comes back at once. Retries stop at `max-attempts`, at the step's
   * request limit and at the step deadline; each attempt is listed in the
   * step's requests with its number and why it was retried.
   * 
   * A policy with `max-attempts` 0, a delay over 3,600,000 ms, an
   * `initial-backoff-ms` over `max-backoff-ms`, or a status outside
   * 400–599 is refused with `invalid-request` naming the field.
   */
  export interface RetryPolicy {
    /**
     * Attempts in all, the first included (1 means no retry). The host
     * caps it (5 by default).
     */
    maxAttempts: number,
    /**
     * Delay bound before the first retry; doubled each time, with full
     * jitter. The host caps it (30 s by default).
     */
    initialBackoffMs: number,
    /**
     * Upper bound on one delay; the host caps it (30 s by default).
     */
    maxBackoffMs: number,
    /**
     * Response statuses that are retried (for example 429, 502, 503),
     * each 400–599.
     */
    retryOnStatus: Uint16Array,
  }
  /**
   * A cursor and where it goes.
   */
  export interface CursorPages {
    /**
     * A path into the page's JSON: keys separated by `.`, a number
     * for an array element, `-1` for the last one (`meta.next_cursor`,
     * `data.-1.id` for Stripe's `starting_after`). An empty path or an
     * empty key (`a..b`) is refused with `invalid-request` naming
     * `pagination.cursor.path`.
     */
    path: string,
    /**
     * The query parameter the cursor is sent in (`starting_after`,
     * `cursor`, `page_token`).
     */
    param: string,
  }
  /**
   * Where the next page's position comes from and goes (see `pagination`).
   */
  export type PageStyle = PageStyleCursor | PageStylePage | PageStyleOffset | PageStyleLink;
  /**
   * The response JSON holds the next page's cursor at `path`; the
   * host sends it in the query parameter `param` of the next page.
   * A cursor that is absent, `null` or `""` (or a page without
   * items) ends paging.
   */
  export interface PageStyleCursor {
    tag: 'cursor',
    val: CursorPages,
  }
  /**
   * Page numbers from 1, sent in this query parameter. A page with
   * no items, or fewer than `page-size`, is the last.
   */
  export interface PageStylePage {
    tag: 'page',
    val: string,
  }
  /**
   * Item offsets from 0, sent in this query parameter; each page
   * moves it on by the items it held. A page with no items, or fewer
   * than `page-size`, is the last.
   */
  export interface PageStyleOffset {
    tag: 'offset',
    val: string,
  }
  /**
   * The URL in the response's `Link` header with `rel="next"`
   * (RFC 8288), joined to the page's URL; none ends paging. The
   * link goes through the same policy checks as a redirect: a link
   * to another origin gets no credentials.
   */
  export interface PageStyleLink {
    tag: 'link',
  }
  /**
   * How the host follows a paginated API: it sends the request, reads
   * each page's items at `items-path`, and sends the next page through
   * the same pipeline (policy, credentials, retries, circuit breaker),
   * each page listed in the step's requests with its page number. The
   * answer is one `response`: the last page's status, headers (with
   * `content-type: application/json`, and `courier-pages` and
   * `courier-pagination` telling how many pages were read and why paging
   * ended) and final URL, and as body the JSON array of every page's
   * items in order. A page with a status outside 2xx ends paging and is
   * answered as it came; a failed page is the answer's `send-error`.
   * 
   * Paging stops cleanly (`courier-pagination` says which): `complete`
   * when there is no next page; `max-pages`, `max-items` (the items are
   * cut to the cap) or `max-bytes` at the host's caps per step (50
   * pages, 10,000 items, 10 MiB of page bodies by default) or at
   * `max-pages`; `request-limit` when the step's request limit leaves no
   * room for another page. The step deadline applies as to any request.
   * 
   * Refused with `invalid-request` naming the field: a `page-size` of 0,
   * a `limit-param` without `page-size`, a `max-pages` of 0, a path that
   * is not a path, an empty parameter name, a page whose body is not
   * JSON or whose `items-path` is not an array, and an upstream that
   * answers with the same cursor or the same next link twice (a loop:
   * paging stops).
   */
  export interface Pagination {
    /**
     * How the next page is found.
     */
    style: PageStyle,
    /**
     * A path (as in `cursor-pages.path`) to the items array in each
     * page's JSON; `""` when the body itself is the array.
     */
    itemsPath: string,
    /**
     * The query parameter the page size is sent in (`limit`,
     * `per_page`), if any.
     */
    limitParam?: string,
    /**
     * Items per page, sent in `limit-param`; with `page` and `offset`,
     * a shorter page is the last. Not 0.
     */
    pageSize?: number,
    /**
     * At most this many pages; the host's cap applies as well.
     */
    maxPages?: number,
  }
  /**
   * An outbound request as a plugin describes it.
   */
  export interface Request {
    /**
     * The method.
     */
    method: Method,
    /**
     * An absolute `http(s)://` URL, or a path relative to the base URL of
     * `connection` (joined without losing the base path or doubling `/`).
     */
    url: string,
    /**
     * Query pairs appended to the URL, percent-encoded by the host.
     */
    query: Pairs,
    /**
     * Request headers. Names the host owns (`Host`, `Content-Length`,
     * `Transfer-Encoding`, `Connection`, `TE`, `Upgrade`, `Proxy-*`,
     * `Authorization`, `Cookie`, and any name the connection uses for its
     * secret) are rejected with `invalid-request`, as is CR, LF or NUL
     * in any name or value.
     */
    headers: Pairs,
    /**
     * The body.
     */
    body: Body,
    /**
     * The declared connection whose base URL and credentials apply. The
     * step must have bound it, else the host returns `credential`.
     */
    connection?: string,
    /**
     * Total time allowed for this request, capped by the host's limit and
     * by the step deadline; the host default applies when absent.
     */
    timeoutMs?: number,
    /**
     * Follow 3xx redirects (up to the host's hop limit), each hop checked
     * again by policy; credentials are dropped when the origin changes.
     */
    followRedirects: boolean,
    /**
     * Retry behaviour (see `retry-policy`); sent once when absent.
     */
    retry?: RetryPolicy,
    /**
     * Sent as `Idempotency-Key`, the same on every attempt; makes any
     * method safe to replay for `retry`. Shown in the step's request
     * records (it is not a secret). `outbound.new-idempotency-key` gives
     * a fresh one. An `Idempotency-Key` in `headers` counts the same.
     */
    idempotencyKey?: string,
    /**
     * Follow the API's pages and answer with all their items (see
     * `pagination`); one page as it comes when absent.
     */
    pagination?: Pagination,
    /**
     * Serve this request from the host's response cache for up to this
     * many milliseconds. Only GET and HEAD are cached, only a 200
     * response, and never one with `Cache-Control: no-store`,
     * `private` or `no-cache` or `Vary: *`; a `max-age` shorter than
     * this caps it. The key is the method, the URL (before the
     * connection's credential is added), the values of the request
     * headers the response's `Vary` names, and the connection's
     * identity (tenant, connection id and a fingerprint of its
     * settings; never a secret value), so no other tenant or
     * credential is served the entry. What is kept is the scrubbed
     * response. A hit is checked against policy like any request,
     * never reaches the network, and is recorded with `cache: "hit"`.
     * With `pagination` each page is cached on its own. Ignored (sent
     * as usual) for other methods and when the operator turns the
     * cache off. Absent: not cached.
     */
    cacheTtlMs?: number,
  }
  /**
   * The response the host hands back, already scrubbed of every secret
   * the host injected.
   */
  export interface Response {
    /**
     * Final status code.
     */
    status: number,
    /**
     * Response headers, in the order received.
     */
    headers: Pairs,
    /**
     * The body, decoded from any content encoding, at most the host's size cap.
     */
    body: Uint8Array,
    /**
     * The URL that answered, after redirects.
     */
    finalUrl: string,
  }
  /**
   * The phase of a request that ran out of time.
   * # Variants
   * 
   * ## `"connect"`
   * 
   * Opening the TCP connection.
   * ## `"tls-handshake"`
   * 
   * The TLS handshake.
   * ## `"first-byte"`
   * 
   * Waiting for the response head after sending.
   * ## `"total"`
   * 
   * The request's total time (including reading the body).
   * ## `"step-deadline"`
   * 
   * The step's own deadline ran out first.
   */
  export type TimeoutPhase = 'connect' | 'tls-handshake' | 'first-byte' | 'total' | 'step-deadline';
  /**
   * Why the host did not return a response. Every case carries a message
   * that is safe to show: it never contains a secret.
   */
  export type SendError = SendErrorDenied | SendErrorTimeout | SendErrorDns | SendErrorConnect | SendErrorTls | SendErrorTooLarge | SendErrorProtocol | SendErrorInvalidRequest | SendErrorCredential | SendErrorLimit | SendErrorCircuitOpen | SendErrorOther;
  /**
   * Policy refused the request: scheme, host, port or resolved address
   * not allowed, or a redirect to such a place.
   */
  export interface SendErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * A phase of the request ran out of time.
   */
  export interface SendErrorTimeout {
    tag: 'timeout',
    val: TimeoutPhase,
  }
  /**
   * The host name could not be resolved.
   */
  export interface SendErrorDns {
    tag: 'dns',
    val: string,
  }
  /**
   * The TCP connection failed.
   */
  export interface SendErrorConnect {
    tag: 'connect',
    val: string,
  }
  /**
   * TLS failed: certificate not trusted, handshake refused, client
   * certificate missing or rejected.
   */
  export interface SendErrorTls {
    tag: 'tls',
    val: string,
  }
  /**
   * The response (headers or body, after decoding) exceeded a size cap.
   */
  export interface SendErrorTooLarge {
    tag: 'too-large',
    val: string,
  }
  /**
   * The peer broke HTTP: malformed response, reset stream, redirect loop.
   */
  export interface SendErrorProtocol {
    tag: 'protocol',
    val: string,
  }
  /**
   * The request itself is invalid: bad URL, forbidden header, body not
   * what its kind requires, or a retry policy the host refuses (the
   * message names the field).
   */
  export interface SendErrorInvalidRequest {
    tag: 'invalid-request',
    val: string,
  }
  /**
   * The connection is unknown, not bound to this step, or its
   * credentials could not be obtained (for example a token refresh failed).
   */
  export interface SendErrorCredential {
    tag: 'credential',
    val: string,
  }
  /**
   * A step limit was reached: requests per step, concurrent requests,
   * request body size, or a connection pool that stayed full; or the
   * connection's rate budget (`connection-spec.rate`, the operator's
   * `[rate]`, an upstream's exhausted rate limit) had no room before
   * the step deadline, and the request was not sent.
   */
  export interface SendErrorLimit {
    tag: 'limit',
    val: string,
  }
  /**
   * The host stopped calling this origin for a while after repeated
   * failures (5xx responses, connect failures, timeouts): the request
   * was not sent. The breaker is per origin and shared by every step
   * of the host; after its open time one probe request goes through,
   * and a success closes it. Under a `retry-policy` the host waits out
   * the open time (within the step deadline) and tries again.
   */
  export interface SendErrorCircuitOpen {
    tag: 'circuit-open',
    val: string,
  }
  /**
   * Anything else, described.
   */
  export interface SendErrorOther {
    tag: 'other',
    val: string,
  }
  /**
   * Where an API key goes.
   * # Variants
   * 
   * ## `"header"`
   * 
   * In a request header.
   * ## `"query"`
   * 
   * In a query parameter.
   */
  export type KeyLocation = 'header' | 'query';
  /**
   * An API key scheme: the secret `key` placed under `name`.
   */
  export interface ApiKeyScheme {
    /**
     * Header or query.
     */
    location: KeyLocation,
    /**
     * The header or query parameter name.
     */
    name: string,
  }
  /**
   * Where a custom placement puts a secret.
   * # Variants
   * 
   * ## `"header"`
   * 
   * A request header.
   * ## `"query"`
   * 
   * A query parameter.
   * ## `"form-field"`
   * 
   * A field of a form body (`form` bodies only).
   * ## `"json-field"`
   * 
   * A top-level field of a JSON object body (`json` bodies only).
   */
  export type PlacementTarget = 'header' | 'query' | 'form-field' | 'json-field';
  /**
   * One secret put into a request by the host after the plugin built it.
   */
  export interface SecretPlacement {
    /**
     * Where it goes.
     */
    target: PlacementTarget,
    /**
     * The header, parameter or field name.
     */
    name: string,
    /**
     * The value, with `{secret}` standing for the secret (for example
     * `Token {secret}`); just `{secret}` for the bare value.
     */
    template: string,
    /**
     * The name of the secret in the operator's connection (`[secrets]` key).
     */
    secret: string,
  }
  /**
   * How the host authenticates OAuth 2 clients at the token endpoint.
   * # Variants
   * 
   * ## `"basic"`
   * 
   * HTTP Basic with client id and secret.
   * ## `"body"`
   * 
   * `client_id` and `client_secret` in the form body.
   */
  export type ClientAuth = 'basic' | 'body';
  /**
   * OAuth 2 settings a plugin can fix for its API; the operator may
   * override each of them in the connection file.
   */
  export interface Oauth2Scheme {
    /**
     * The token endpoint.
     */
    tokenUrl?: string,
    /**
     * Scopes requested.
     */
    scopes: Array<string>,
    /**
     * The `audience` parameter some providers require.
     */
    audience?: string,
    /**
     * How the client authenticates.
     */
    clientAuth: ClientAuth,
  }
  /**
   * Signature algorithm of a host-signed JWT.
   * # Variants
   * 
   * ## `"hs256"`
   * 
   * HMAC with SHA-256 (secret `hmac_key`).
   * ## `"rs256"`
   * 
   * RSA PKCS#1 v1.5 with SHA-256 (secret `private_key`, PEM).
   * ## `"es256"`
   * 
   * ECDSA P-256 with SHA-256 (secret `private_key`, PEM).
   */
  export type JwtAlgorithm = 'hs256' | 'rs256' | 'es256';
  /**
   * A JWT the host signs for each token it needs.
   */
  export interface JwtScheme {
    /**
     * The algorithm.
     */
    algorithm: JwtAlgorithm,
    /**
     * A JSON object of claims; `{now}` and `{exp}` placeholders are filled
     * with the current time and the expiry.
     */
    claims: string,
    /**
     * Token lifetime in seconds.
     */
    lifetimeSecs: number,
    /**
     * When present, the JWT is exchanged at this URL for an access token
     * (service-account style); otherwise it is sent as a bearer token.
     */
    tokenUrl?: string,
  }
  /**
   * How requests on a connection are authenticated. The plugin declares
   * the scheme; the operator supplies the secrets, which the plugin never sees.
   */
  export type AuthScheme = AuthSchemeNone | AuthSchemeOperatorDefined | AuthSchemeBearer | AuthSchemeBasic | AuthSchemeApiKey | AuthSchemeCustom | AuthSchemeOauth2ClientCredentials | AuthSchemeOauth2RefreshToken | AuthSchemeOauth2Password | AuthSchemeJwt | AuthSchemeClientCertificate;
  /**
   * No authentication.
   */
  export interface AuthSchemeNone {
    tag: 'none',
  }
  /**
   * The operator's connection file chooses the scheme (generic plugins
   * such as a plain HTTP request step).
   */
  export interface AuthSchemeOperatorDefined {
    tag: 'operator-defined',
  }
  /**
   * `Authorization: Bearer <token>` (secret `token`).
   */
  export interface AuthSchemeBearer {
    tag: 'bearer',
  }
  /**
   * HTTP Basic (secrets `username`, `password`).
   */
  export interface AuthSchemeBasic {
    tag: 'basic',
  }
  /**
   * An API key in a header or query parameter (secret `key`).
   */
  export interface AuthSchemeApiKey {
    tag: 'api-key',
    val: ApiKeyScheme,
  }
  /**
   * Secrets placed in headers, query, form or JSON fields by template.
   */
  export interface AuthSchemeCustom {
    tag: 'custom',
    val: Array<SecretPlacement>,
  }
  /**
   * OAuth 2 client credentials grant.
   */
  export interface AuthSchemeOauth2ClientCredentials {
    tag: 'oauth2-client-credentials',
    val: Oauth2Scheme,
  }
  /**
   * OAuth 2 refresh token grant; a rotated refresh token is stored.
   */
  export interface AuthSchemeOauth2RefreshToken {
    tag: 'oauth2-refresh-token',
    val: Oauth2Scheme,
  }
  /**
   * OAuth 2 resource owner password grant.
   */
  export interface AuthSchemeOauth2Password {
    tag: 'oauth2-password',
    val: Oauth2Scheme,
  }
  /**
   * A JWT signed by the host.
   */
  export interface AuthSchemeJwt {
    tag: 'jwt',
    val: JwtScheme,
  }
  /**
   * A TLS client certificate (mTLS) from the operator's connection.
   */
  export interface AuthSchemeClientCertificate {
    tag: 'client-certificate',
  }
  /**
   * A connection's rate budget; every field left out is unlimited. The
   * host refuses the manifest (at load) when a field is 0 or when one of
   * `requests` and `per-secs` is given without the other.
   */
  export interface RateBudget {
    /**
     * Requests allowed in any window of `per-secs` seconds (token
     * requests the host makes are not counted).
     */
    requests?: number,
    /**
     * The window's length in seconds.
     */
    perSecs?: number,
    /**
     * Requests in flight at once.
     */
    concurrent?: number,
  }
  /**
   * A connection the plugin needs: one third-party account, bound per
   * tenant by the operator.
   */
  export interface ConnectionSpec {
    /**
     * The name requests use in `request.connection`; unique in the manifest.
     */
    name: string,
    /**
     * What it connects to, for people setting it up.
     */
    description: string,
    /**
     * Default base URL for relative request URLs; the operator may
     * override it. Its origin need not be in `allowed-hosts`.
     */
    baseUrl?: string,
    /**
     * The authentication scheme.
     */
    auth: AuthScheme,
    /**
     * Further origins (`https://host[:port]`) that may receive this
     * connection's credentials, besides the base URL's origin.
     */
    authOrigins: Array<string>,
    /**
     * Non-secret headers sent with every request on this connection.
     */
    sharedHeaders: Pairs,
    /**
     * Non-secret query pairs sent with every request on this connection.
     */
    sharedQuery: Pairs,
    /**
     * A data call that checks the connection works (`courier connections test`).
     */
    verifyCall?: string,
    /**
     * The rate budget the plugin declares for the connection: what the
     * upstream allows one credential. The host keeps one budget per
     * tenant and connection id, shared by every step; the operator's
     * `[rate]` table may narrow it (the narrower of the two applies
     * part by part), and an upstream's rate-limit fields announcing 0
     * remaining hold it until their reset. A request over the budget
     * waits within the step deadline, or fails with `limit` (outcome
     * `max-connection`) without being sent.
     */
    rate: RateBudget,
  }
  /**
   * Whether a call reads or changes things.
   * # Variants
   * 
   * ## `"data"`
   * 
   * Reads data; safe to repeat.
   * ## `"action"`
   * 
   * Changes something on the other side.
   */
  export type CallKind = 'data' | 'action';
  /**
   * One call a plugin offers.
   */
  export interface CallSpec {
    /**
     * The name `invoke` receives; unique in the manifest.
     */
    name: string,
    /**
     * A short human title.
     */
    title: string,
    /**
     * What the call does.
     */
    description: string,
    /**
     * Data or action.
     */
    kind: CallKind,
    /**
     * Whether repeating the call with the same input has no further effect.
     * The host then replays a PUT or DELETE of the call under a
     * `retry-policy` even after its bytes may have reached the server;
     * otherwise only GET, HEAD, OPTIONS and requests with an
     * `idempotency-key` are.
     */
    idempotent: boolean,
    /**
     * JSON Schema (as JSON text) the input must satisfy; the host validates
     * input against it before `invoke`.
     */
    inputSchema: string,
    /**
     * JSON Schema (as JSON text) of the output. The host checks each
     * successful step's output against it and reports where it departs
     * (`contract_drift` in the step result); an operator may make a
     * mismatch fail the step.
     */
    outputSchema: string,
  }
  /**
   * What a plugin declares about itself; returned by `integration.describe`.
   */
  export interface Manifest {
    /**
     * The plugin's name (lowercase, digits and `-`).
     */
    name: string,
    /**
     * Its version (semver).
     */
    version: string,
    /**
     * What it integrates with.
     */
    description: string,
    /**
     * Hosts the plugin may call: `scheme://host[:port]` where host is a
     * literal name, `*.` followed by a domain, or `*` for any host (generic
     * plugins). The origin of each connection's base URL (declared in
     * `connection-spec.base-url`, or set by a connection file handed
     * to the step; not by a stored one) is allowed as well unless a
     * pattern here already covers that URL, so a host is written once. The operator's policy
     * narrows this; what both allow is the effective allowlist.
     */
    allowedHosts: Array<string>,
    /**
     * The connections it uses.
     */
    connections: Array<ConnectionSpec>,
    /**
     * The calls it offers.
     */
    calls: Array<CallSpec>,
  }
  /**
   * A failed HTTP exchange that the plugin reports as the step's result.
   */
  export interface HttpFailure {
    /**
     * The final status (outside 2xx).
     */
    status: number,
    /**
     * A short description.
     */
    message: string,
    /**
     * Output JSON the step still returns (for example the response), so
     * a platform can route on it.
     */
    output?: string,
  }
  /**
   * Why a call failed; the host turns it into the step's outcome.
   */
  export type StepError = StepErrorInvalidInput | StepErrorHttp | StepErrorSend | StepErrorFailed;
  /**
   * The input was not what the call accepts (outcome `error`).
   */
  export interface StepErrorInvalidInput {
    tag: 'invalid-input',
    val: string,
  }
  /**
   * The upstream answered with a non-2xx status (outcome `http-error`).
   */
  export interface StepErrorHttp {
    tag: 'http',
    val: HttpFailure,
  }
  /**
   * A request failed and the plugin passes the host's error on; the
   * outcome follows the error (`timeout`, `denied`, `max-connection`, `error`).
   */
  export interface StepErrorSend {
    tag: 'send',
    val: SendError,
  }
  /**
   * Anything else the plugin reports (outcome `error`).
   */
  export interface StepErrorFailed {
    tag: 'failed',
    val: string,
  }
}
