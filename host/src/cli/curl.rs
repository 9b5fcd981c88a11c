//! `courier curl`: turns a cURL command pasted from an API's documentation
//! into an `http-request` input and a connection file, moving the
//! credential (`-u`, `--oauth2-bearer`, an `Authorization` or key header, a
//! key query parameter or form field) into the file's `[secrets]`. Options
//! that change the request and that Courier cannot reproduce are errors that
//! name them; options that only change curl's own output are listed in the
//! notes.

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use url::Url;

/// What a cURL command becomes.
#[derive(Debug)]
pub(crate) struct Imported {
    /// The `http-request` plugin's `request` input.
    pub(crate) input: Value,
    /// The connection file (TOML) for its `default` connection.
    pub(crate) connection: String,
    /// What was left out or needs the operator's attention.
    pub(crate) notes: Vec<String>,
}

/// Header names that carry an API key (compared without case).
const KEY_HEADERS: &[&str] = &[
    "x-api-key",
    "api-key",
    "apikey",
    "x-apikey",
    "x-auth-token",
    "x-access-token",
    "private-token",
    "x-shopify-access-token",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
];

/// Query parameter and form field names that carry a key or token.
const KEY_PARAMS: &[&str] = &[
    "api_key",
    "apikey",
    "api-key",
    "key",
    "access_token",
    "token",
    "auth_token",
    "private_token",
];

/// Options that only change what curl prints or how it reports.
const OUTPUT_ONLY: &[&str] = &[
    "-s",
    "--silent",
    "-S",
    "--show-error",
    "-v",
    "--verbose",
    "-i",
    "--include",
    "-f",
    "--fail",
    "--fail-with-body",
    "-g",
    "--globoff",
    "-N",
    "--no-buffer",
    "-#",
    "--progress-bar",
    "--compressed",
    "--basic",
    "--http1.1",
    "--http2",
];

/// Options whose value only changes what curl prints.
const OUTPUT_ONLY_WITH_VALUE: &[&str] = &["-o", "--output", "-w", "--write-out"];

/// Options that take a value.
const WITH_VALUE: &[&str] = &[
    "-X",
    "--request",
    "-H",
    "--header",
    "-d",
    "--data",
    "--data-ascii",
    "--data-raw",
    "--data-binary",
    "--data-urlencode",
    "-F",
    "--form",
    "--form-string",
    "-u",
    "--user",
    "-A",
    "--user-agent",
    "-e",
    "--referer",
    "--url",
    "-m",
    "--max-time",
    "--json",
    "--oauth2-bearer",
    "--cacert",
    "-o",
    "--output",
    "-w",
    "--write-out",
];

/// The credential found in the command.
#[derive(Debug)]
enum Credential {
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
    /// An `Authorization` header of another scheme (`Token …`).
    AuthorizationTemplate {
        template: String,
        key: String,
    },
    KeyHeader {
        name: String,
        key: String,
    },
    KeyQuery {
        name: String,
        key: String,
    },
    KeyFormField {
        name: String,
        key: String,
    },
}

/// The parts of a request as curl would send it.
#[derive(Default)]
struct Parsed {
    url: Option<String>,
    method: Option<String>,
    headers: Vec<(String, String)>,
    /// Each `-d`-like option: the text curl sends (`--data-urlencode`'s encoded).
    data: Vec<String>,
    form: Vec<Value>,
    json: Option<String>,
    get: bool,
    head: bool,
    location: bool,
    insecure: bool,
    cacert: Option<String>,
    timeout: Option<f64>,
    credentials: Vec<(String, Credential)>,
    notes: Vec<String>,
}

/// Converts a cURL command line.
pub(crate) fn import(command: &str) -> anyhow::Result<Imported> {
    let joined = command.replace("\\\r\n", " ").replace("\\\n", " ");
    let words = shell_words::split(&joined).context("the command is not valid shell words")?;
    let mut words = words.into_iter();
    match words.next().as_deref() {
        Some("curl") => {}
        _ => bail!("the command must start with `curl`"),
    }
    let mut parsed = Parsed::default();
    while let Some(word) = words.next() {
        let (flag, attached) = split_flag(&word);
        let Some(flag) = flag else {
            set_url(&mut parsed, word)?;
            continue;
        };
        if OUTPUT_ONLY.contains(&flag.as_str()) {
            parsed
                .notes
                .push(format!("`{flag}` changes only curl's output: left out"));
            continue;
        }
        if let Some(cluster) = short_cluster(&flag) {
            for f in cluster {
                apply_switch(&mut parsed, &f)?;
            }
            continue;
        }
        if !WITH_VALUE.contains(&flag.as_str()) {
            apply_switch(&mut parsed, &flag)?;
            continue;
        }
        let value = match attached {
            Some(v) => v,
            None => words
                .next()
                .with_context(|| format!("`{flag}` needs a value"))?,
        };
        apply_option(&mut parsed, &flag, value)?;
    }
    assemble(parsed)
}

/// `--name=value` → (`--name`, value); `-Xvalue` → (`-X`, value); a word not
/// starting with `-` → no flag.
fn split_flag(word: &str) -> (Option<String>, Option<String>) {
    if let Some(long) = word.strip_prefix("--") {
        return match long.split_once('=') {
            Some((name, value)) => (Some(format!("--{name}")), Some(value.to_owned())),
            None => (Some(word.to_owned()), None),
        };
    }
    if word.len() > 2 && word.starts_with('-') {
        let flag = &word[..2];
        if WITH_VALUE.contains(&flag) {
            return (Some(flag.to_owned()), Some(word[2..].to_owned()));
        }
    }
    match word.starts_with('-') && word.len() > 1 {
        true => (Some(word.to_owned()), None),
        false => (None, None),
    }
}

/// `-sSL` → `-s`, `-S`, `-L`, when every letter is an option without a value.
fn short_cluster(flag: &str) -> Option<Vec<String>> {
    let letters = flag
        .strip_prefix('-')
        .filter(|l| l.len() > 1 && !l.starts_with('-'))?;
    Some(letters.chars().map(|c| format!("-{c}")).collect())
}

fn set_url(parsed: &mut Parsed, url: String) -> anyhow::Result<()> {
    if let Some(first) = &parsed.url {
        bail!("the command names two URLs (`{first}`, `{url}`); a step sends one request");
    }
    parsed.url = Some(url);
    Ok(())
}

/// An option without a value.
fn apply_switch(parsed: &mut Parsed, flag: &str) -> anyhow::Result<()> {
    match flag {
        "-G" | "--get" => parsed.get = true,
        "-I" | "--head" => parsed.head = true,
        "-L" | "--location" => parsed.location = true,
        "-k" | "--insecure" => parsed.insecure = true,
        f if OUTPUT_ONLY.contains(&f) => {
            parsed
                .notes
                .push(format!("`{f}` changes only curl's output: left out"));
        }
        f if WITH_VALUE.contains(&f) => bail!("`{f}` needs a value"),
        "-b" | "--cookie" | "-c" | "--cookie-jar" => {
            bail!("`{flag}`: cookies are not supported (the host sends no cookies)")
        }
        "-x" | "--proxy" | "--digest" | "--ntlm" | "--negotiate" | "-T" | "--upload-file"
        | "-E" | "--cert" | "--resolve" | "--unix-socket" => {
            bail!("`{flag}` is not supported by Courier")
        }
        other => bail!("unknown or unsupported option `{other}`"),
    }
    Ok(())
}

/// An option with its value.
fn apply_option(parsed: &mut Parsed, flag: &str, value: String) -> anyhow::Result<()> {
    match flag {
        "-X" | "--request" => parsed.method = Some(value.to_uppercase()),
        "-H" | "--header" => header(parsed, &value)?,
        "-d" | "--data" | "--data-ascii" | "--data-raw" | "--data-binary" => {
            if value.starts_with('@') && flag != "--data-raw" {
                bail!("`{flag} {value}` reads a file: paste the data instead");
            }
            parsed.data.push(value);
        }
        "--data-urlencode" => parsed.data.push(urlencoded(&value)?),
        "-F" | "--form" | "--form-string" => {
            let (name, content) = value
                .split_once('=')
                .with_context(|| format!("`{flag} {value}` has no `name=`"))?;
            if flag != "--form-string" && (content.starts_with('@') || content.starts_with('<')) {
                bail!("`{flag} {value}` uploads a file: Courier has no local files to send");
            }
            parsed.form.push(json!({"name": name, "value": content}));
        }
        "-u" | "--user" => {
            let (username, password) = value.split_once(':').with_context(|| {
                format!("`{flag} {value}` has no password (curl would prompt for one): write user:password")
            })?;
            let credential = Credential::Basic {
                username: username.to_owned(),
                password: password.to_owned(),
            };
            parsed.credentials.push((format!("`{flag}`"), credential));
        }
        "--oauth2-bearer" => {
            let credential = Credential::Bearer(value);
            parsed
                .credentials
                .push(("`--oauth2-bearer`".into(), credential));
        }
        "-A" | "--user-agent" => parsed.headers.push(("User-Agent".into(), value)),
        "-e" | "--referer" => parsed.headers.push(("Referer".into(), value)),
        "--url" => set_url(parsed, value)?,
        "-m" | "--max-time" => {
            let secs: f64 = value.parse().with_context(|| format!("`{flag} {value}`"))?;
            parsed.timeout = Some(secs);
        }
        "--json" => {
            if value.starts_with('@') {
                bail!("`--json {value}` reads a file: paste the JSON instead");
            }
            parsed.json = Some(value);
        }
        "--cacert" => parsed.cacert = Some(value),
        f if OUTPUT_ONLY_WITH_VALUE.contains(&f) => {
            parsed.notes.push(format!(
                "`{f} {value}` changes only curl's output: left out"
            ));
        }
        other => bail!("unknown or unsupported option `{other}`"),
    }
    Ok(())
}

/// `--data-urlencode`'s forms: `name=content` and `=content` (content
/// percent-encoded), `content` alone (all of it encoded). Files are refused.
fn urlencoded(value: &str) -> anyhow::Result<String> {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    if value.contains('@') && !value.contains('=') {
        bail!("`--data-urlencode {value}` reads a file: paste the data instead");
    }
    Ok(match value.split_once('=') {
        Some(("", content)) => encode(content),
        Some((name, content)) => format!("{name}={}", encode(content)),
        None => encode(value),
    })
}

/// A header: a credential, or one to send as it is.
fn header(parsed: &mut Parsed, line: &str) -> anyhow::Result<()> {
    let (name, value) = line
        .split_once(':')
        .with_context(|| format!("header `{line}` has no `:`"))?;
    let (name, value) = (name.trim(), value.trim());
    let lower = name.to_ascii_lowercase();
    let source = format!("header `{name}`");
    if lower == "authorization" {
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        let token = token.trim().to_owned();
        let credential = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => Credential::Bearer(token),
            "basic" => {
                let decoded = STANDARD
                    .decode(&token)
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
                    .context(
                        "an `Authorization: Basic` header that is not base64 of user:password",
                    )?;
                let (username, password) = decoded
                    .split_once(':')
                    .context("an `Authorization: Basic` value without `:`")?;
                Credential::Basic {
                    username: username.into(),
                    password: password.into(),
                }
            }
            _ => Credential::AuthorizationTemplate {
                template: format!("{scheme} {{secret}}"),
                key: token,
            },
        };
        parsed.credentials.push((source, credential));
    } else if KEY_HEADERS.contains(&lower.as_str()) {
        let credential = Credential::KeyHeader {
            name: name.into(),
            key: value.into(),
        };
        parsed.credentials.push((source, credential));
    } else if lower == "cookie" || lower == "proxy-authorization" {
        bail!("header `{name}` is not supported (the host owns it)");
    } else {
        parsed.headers.push((name.into(), value.into()));
    }
    Ok(())
}

/// Puts the parts together: the step input and the connection file.
fn assemble(mut parsed: Parsed) -> anyhow::Result<Imported> {
    let raw_url = parsed.url.take().context("the command names no URL")?;
    let mut url = Url::parse(&raw_url).with_context(|| format!("URL `{raw_url}`"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("URL `{raw_url}`: only http and https");
    }
    if !url.username().is_empty() {
        let credential = Credential::Basic {
            username: url.username().to_owned(),
            password: url.password().unwrap_or("").to_owned(),
        };
        parsed
            .credentials
            .push(("the URL's user info".into(), credential));
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    let mut query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let mut data = parsed.data.join("&");
    if parsed.get && !data.is_empty() {
        query.extend(form_urlencoded::parse(data.as_bytes()).into_owned());
        data.clear();
    }
    if let Some(i) = query
        .iter()
        .position(|(k, _)| KEY_PARAMS.contains(&k.as_str()))
    {
        let (name, key) = query.remove(i);
        let source = format!("query parameter `{name}`");
        parsed
            .credentials
            .push((source, Credential::KeyQuery { name, key }));
    }
    let content_type = take_header(&mut parsed.headers, "content-type");
    let mut input = serde_json::Map::new();
    let body = body(&mut parsed, &data, content_type.as_deref(), &mut input)?;
    let method = match (&parsed.method, parsed.head, body) {
        (Some(m), _, _) => m.clone(),
        (None, true, _) => "HEAD".into(),
        (None, false, true) => "POST".into(),
        (None, false, false) => "GET".into(),
    };
    let mut path = url.path().to_owned();
    if !query.is_empty() {
        path.push('?');
        path.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&query)
                .finish(),
        );
    }
    input.insert("url".into(), path.into());
    if method != "GET" {
        input.insert("method".into(), method.into());
    }
    if !parsed.headers.is_empty() {
        let headers: serde_json::Map<String, Value> = parsed
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        input.insert("headers".into(), headers.into());
    }
    if let Some(secs) = parsed.timeout {
        input.insert("timeout".into(), secs.into());
    }
    if !parsed.location {
        input.insert("follow_location".into(), false.into());
        parsed
            .notes
            .push("without `-L` curl does not follow redirects: `follow_location` is false".into());
    }
    let origin = url.origin().ascii_serialization();
    let connection = connection_file(&origin, &mut parsed)?;
    Ok(Imported {
        input: input.into(),
        connection,
        notes: parsed.notes,
    })
}

/// Removes a header (any case) and returns its value.
fn take_header(headers: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let i = headers
        .iter()
        .position(|(k, _)| k.eq_ignore_ascii_case(name))?;
    Some(headers.remove(i).1)
}

/// Sets `body` and `body_type` in `input`; whether there is a body. A key
/// form field becomes the credential.
fn body(
    parsed: &mut Parsed,
    data: &str,
    content_type: Option<&str>,
    input: &mut serde_json::Map<String, Value>,
) -> anyhow::Result<bool> {
    let media = content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if let Some(json) = &parsed.json {
        let value: Value = serde_json::from_str(json).context("`--json` is not valid JSON")?;
        input.insert("body".into(), value);
        parsed
            .headers
            .push(("Accept".into(), "application/json".into()));
        return Ok(true);
    }
    if !parsed.form.is_empty() {
        if !data.is_empty() {
            bail!("the command mixes `-F` and `-d`, which curl refuses too");
        }
        input.insert("body_type".into(), "multipart".into());
        input.insert("body".into(), std::mem::take(&mut parsed.form).into());
        return Ok(true);
    }
    if data.is_empty() {
        if let Some(c) = content_type {
            parsed.headers.push(("Content-Type".into(), c.to_owned()));
        }
        return Ok(false);
    }
    match media.as_deref() {
        Some(m) if m == "application/json" || m.ends_with("+json") => {
            let value: Value = serde_json::from_str(data)
                .context("the data is not valid JSON although the Content-Type says JSON")?;
            input.insert("body".into(), value);
        }
        None if serde_json::from_str::<Value>(data)
            .is_ok_and(|v| v.is_object() || v.is_array()) =>
        {
            // curl sends `-d '{…}'` as a form; so does the step, byte for byte.
            input.insert("body_type".into(), "raw".into());
            input.insert("body".into(), data.into());
            let form = "application/x-www-form-urlencoded".to_owned();
            parsed.headers.push(("Content-Type".into(), form));
            parsed.notes.push(
                "the data is JSON, but without a Content-Type curl sends it as a form, and so does the step; add `-H 'Content-Type: application/json'` to send JSON".into(),
            );
        }
        None | Some("application/x-www-form-urlencoded") => {
            let mut pairs: Vec<(String, String)> = form_urlencoded::parse(data.as_bytes())
                .into_owned()
                .collect();
            if let Some(i) = pairs
                .iter()
                .position(|(k, _)| KEY_PARAMS.contains(&k.as_str()))
            {
                let (name, key) = pairs.remove(i);
                let source = format!("form field `{name}`");
                parsed
                    .credentials
                    .push((source, Credential::KeyFormField { name, key }));
            }
            let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| json!([k, v])).collect();
            input.insert("body_type".into(), "form".into());
            input.insert("body".into(), pairs.into());
        }
        Some(_) => {
            input.insert("body_type".into(), "raw".into());
            input.insert("body".into(), data.into());
            let c = content_type.unwrap_or_default().to_owned();
            parsed.headers.push(("Content-Type".into(), c));
        }
    }
    Ok(true)
}

/// The connection file: `default`, the URL's origin, and the credential.
fn connection_file(origin: &str, parsed: &mut Parsed) -> anyhow::Result<String> {
    let mut file = toml::Table::new();
    file.insert("connection".into(), "default".into());
    file.insert("base_url".into(), origin.into());
    let mut secrets = toml::Table::new();
    let mut credentials = std::mem::take(&mut parsed.credentials).into_iter();
    let auth = match credentials.next() {
        None => "none",
        Some((_, credential)) => {
            let (auth, settings, found) = credential_keys(credential);
            file.extend(settings);
            secrets.extend(found);
            auth
        }
    };
    if let Some((second, _)) = credentials.next() {
        bail!("the command carries a second credential ({second}); a connection holds one");
    }
    file.insert("auth".into(), auth.into());
    if parsed.insecure || parsed.cacert.is_some() {
        let mut tls = toml::Table::new();
        if let Some(ca) = parsed.cacert.take() {
            tls.insert("ca_file".into(), ca.into());
        }
        if parsed.insecure {
            tls.insert("verify_peer".into(), false.into());
            parsed.notes.push(
                "`-k` turns TLS verification off: the operator must allow it (`courier run --allow-insecure-tls`)".into(),
            );
        }
        file.insert("tls".into(), tls.into());
    }
    if !secrets.is_empty() {
        file.insert("secrets".into(), secrets.into());
    }
    toml::to_string(&file).context("writing the connection file")
}

/// The scheme, its settings and its secrets.
fn credential_keys(credential: Credential) -> (&'static str, toml::Table, toml::Table) {
    let mut settings = toml::Table::new();
    let mut secrets = toml::Table::new();
    let auth = match credential {
        Credential::Basic { username, password } => {
            secrets.insert("username".into(), username.into());
            secrets.insert("password".into(), password.into());
            "basic"
        }
        Credential::Bearer(token) => {
            secrets.insert("token".into(), token.into());
            "bearer"
        }
        Credential::AuthorizationTemplate { template, key } => {
            settings.insert("header".into(), "Authorization".into());
            settings.insert("template".into(), template.into());
            secrets.insert("key".into(), key.into());
            "custom"
        }
        Credential::KeyHeader { name, key } => {
            settings.insert("header".into(), name.into());
            secrets.insert("key".into(), key.into());
            "api-key"
        }
        Credential::KeyQuery { name, key } => {
            settings.insert("query".into(), name.into());
            secrets.insert("key".into(), key.into());
            "api-key"
        }
        Credential::KeyFormField { name, key } => {
            settings.insert("form_field".into(), name.into());
            secrets.insert("key".into(), key.into());
            "custom"
        }
    };
    (auth, settings, secrets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_host::{Auth, ConnectionAuth, ConnectionConfig};

    fn config(imported: &Imported) -> ConnectionConfig {
        toml::from_str(&imported.connection).expect("a valid connection file")
    }

    #[test]
    fn stripe_create_customer() {
        // https://docs.stripe.com/api/customers/create (curl tab)
        let i = import(
            "curl https://api.stripe.com/v1/customers \\\n  -u \"sk_test_4eC39HqLyjWDarjtT1zdp7dc:\" \\\n  -d name=\"Jenny Rosen\" \\\n  --data-urlencode email=\"jennyrosen@example.com\" \\\n  -d \"metadata[order_id]\"=6735",
        )
        .unwrap();
        assert_eq!(i.input["method"], "POST");
        assert_eq!(i.input["url"], "/v1/customers");
        assert_eq!(i.input["body_type"], "form");
        assert_eq!(
            i.input["body"],
            json!([
                ["name", "Jenny Rosen"],
                ["email", "jennyrosen@example.com"],
                ["metadata[order_id]", "6735"]
            ])
        );
        let c = config(&i);
        assert_eq!(c.base_url.as_deref(), Some("https://api.stripe.com"));
        match c.auth {
            ConnectionAuth::Given(Auth::Basic(b)) => {
                assert_eq!(
                    b.secrets.username.expose(),
                    "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
                );
                assert_eq!(b.secrets.password.expose(), "");
            }
            other => panic!("basic expected: {other:?}"),
        }
        assert!(
            !i.input.to_string().contains("sk_test"),
            "the key left the input"
        );
    }

    #[test]
    fn keys_in_headers_queries_and_form_fields_move_to_secrets() {
        let i = import("curl -H 'X-Api-Key: k-123456789' https://api.example.com/v2/items?limit=5")
            .unwrap();
        assert_eq!(i.input["url"], "/v2/items?limit=5");
        assert!(
            matches!(config(&i).auth, ConnectionAuth::Given(Auth::ApiKey(a)) if a.header.as_deref() == Some("X-Api-Key"))
        );
        let i = import("curl 'https://api.example.com/q?api_key=abcdefgh123&q=rust'").unwrap();
        assert_eq!(i.input["url"], "/q?q=rust");
        assert!(
            matches!(config(&i).auth, ConnectionAuth::Given(Auth::ApiKey(a)) if a.query.as_deref() == Some("api_key"))
        );
        let i = import("curl https://slack.com/api/auth.test -d token=xoxb-1234567890 -d pretty=1")
            .unwrap();
        assert_eq!(i.input["body"], json!([["pretty", "1"]]));
        assert!(
            matches!(config(&i).auth, ConnectionAuth::Given(Auth::Custom(c)) if c.form_field.as_deref() == Some("token"))
        );
        let i = import("curl -H 'Authorization: token ghp_abcdefgh' https://api.github.com/user")
            .unwrap();
        assert!(
            matches!(config(&i).auth, ConnectionAuth::Given(Auth::Custom(c)) if c.template.as_deref() == Some("token {secret}"))
        );
    }

    #[test]
    fn what_cannot_be_reproduced_is_named() {
        for (command, named) in [
            ("curl -b 'a=b' https://a.test/", "`-b`"),
            ("curl --proxy http://p:8080 https://a.test/", "`--proxy`"),
            ("curl -d @body.json https://a.test/", "reads a file"),
            ("curl -F file=@photo.jpg https://a.test/", "uploads a file"),
            ("curl --frobnicate https://a.test/", "`--frobnicate`"),
            ("curl -u alice https://a.test/", "no password"),
            (
                "curl -u a:bbbbbbbb -H 'X-Api-Key: kkkkkkkk' https://a.test/",
                "second credential",
            ),
            ("curl https://a.test/ https://b.test/", "two URLs"),
            ("wget https://a.test/", "start with `curl`"),
        ] {
            let err = import(command).unwrap_err().to_string();
            assert!(err.contains(named), "{command}: {err}");
        }
    }

    #[test]
    fn output_options_are_noted_and_clusters_split() {
        let i = import("curl -sSL -o out.json --compressed https://a.test/x").unwrap();
        assert!(i.notes.iter().any(|n| n.contains("`-s`")), "{:?}", i.notes);
        assert!(
            i.notes.iter().any(|n| n.contains("`-o out.json`")),
            "{:?}",
            i.notes
        );
        assert!(i.input.get("follow_location").is_none(), "-L follows");
        let i = import("curl -XPUT --json '{\"a\":1}' https://a.test/x").unwrap();
        assert_eq!(
            (i.input["method"].as_str(), &i.input["body"]),
            (Some("PUT"), &json!({"a": 1}))
        );
        assert_eq!(i.input["follow_location"], false);
    }
}
