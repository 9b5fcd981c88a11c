//! The embedded connection store: secrets sealed at rest and bound to their
//! record, failing closed when altered or moved; the `connections` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use courier_host::{
    ConnectionStore, MasterKey, Outcome, SqliteStore, StepConnection, StepRequest, StoreError,
    StoreFuture,
};
use courier_tests::{TestServer, host_builder, host_with, plugin, target_dir};
use serde_json::json;

use crate::auth::{CANARY, assert_no_leak, encodings};

/// A fresh, empty directory under target/ for one test.
fn data_dir(name: &str) -> PathBuf {
    let dir = target_dir()
        .join("test-data")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn bearer_file(base: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{base}'\nauth = 'bearer'\n[secrets]\ntoken = '''{CANARY}'''"
    )
}

fn sqlite(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("connections.sqlite")).unwrap()
}

/// Runs the `http-request` call on `/me` for tenant `acme` with `connection`.
async fn me_step(
    host: &courier_host::Host,
    plugin: String,
    connection: impl Into<StepConnection>,
) -> courier_host::StepResult {
    host.run_step(StepRequest {
        tenant: "acme".into(),
        plugin,
        call: "request".into(),
        input: json!({"url": "/me"}),
        connections: vec![connection.into()],
    })
    .await
}

#[tokio::test]
async fn stored_secrets_are_sealed_and_still_reach_the_upstream() {
    let dir = data_dir("sealed");
    let server = TestServer::echo().await;
    let store = SqliteStore::open(&dir, MasterKey::generate().unwrap()).unwrap();
    store
        .put("acme", "crm", "http-request", &bearer_file(&server.url("")))
        .unwrap();
    let file = std::fs::read(dir.join("connections.sqlite")).unwrap();
    for form in encodings(CANARY) {
        assert!(
            !file.windows(form.len()).any(|w| w == form.as_bytes()),
            "the store holds `{form}` in the clear"
        );
    }
    let listed = store.list(Some("acme")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].secrets, vec!["token".to_owned()]);
    assert!(!format!("{listed:?}").contains(CANARY));

    let (plugin_name, config) = store.get("acme", "crm").unwrap();
    assert_eq!(plugin_name, "http-request");
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = me_step(&host, plugin_name, config).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        server.received()[0].header("authorization"),
        Some(format!("Bearer {CANARY}").as_str())
    );
    assert_no_leak(&r, &[CANARY]);
}

/// The store seam: the same SQLite store through `dyn ConnectionStore`,
/// its calls on Tokio's blocking threads. What goes in comes back with its
/// secrets; listings name secrets and never hold them; a stored connection
/// binds once and serves a step.
#[tokio::test]
async fn the_store_works_through_its_async_seam() {
    let dir = data_dir("seam");
    let server = TestServer::echo().await;
    let store: std::sync::Arc<dyn ConnectionStore> =
        std::sync::Arc::new(SqliteStore::open(&dir, MasterKey::generate().unwrap()).unwrap());
    store
        .put("acme", "crm", "http-request", &bearer_file(&server.url("")))
        .await
        .unwrap();
    let err = store
        .put(
            "acme",
            "bad",
            "http-request",
            "connection = 'default'\nauth = 'bearer'\n[secrets]\ntokn = 'x'",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("tokn"), "{err}");
    let listed = store.list(None).await.unwrap();
    assert_eq!(listed.len(), 1, "nothing of the refused file is stored");
    assert!(!format!("{listed:?}").contains(CANARY));
    let (plugin_name, config) = store.get("acme", "crm").await.unwrap();
    let host = host_with(host_builder(), &["http-request"]).await;
    let connection = host.bind_connection("acme", &plugin_name, config).unwrap();
    let r = me_step(&host, plugin_name, connection).await;
    assert!(r.is_success(), "{r:?}");
    assert_no_leak(&r, &[CANARY]);
    let rotated = courier_host::Secret::new("rotated-token-value-42");
    store
        .replace_secret("acme", "crm", "token", &rotated)
        .await
        .unwrap();
    let (_, config) = store.get("acme", "crm").await.unwrap();
    let r = me_step(&host, "http-request".into(), config).await;
    assert!(r.is_success(), "{r:?}");
    assert_eq!(
        server.received()[1].header("authorization"),
        Some("Bearer rotated-token-value-42")
    );
    assert!(store.delete("acme", "crm").await.unwrap());
    assert!(!store.delete("acme", "crm").await.unwrap());
    assert!(matches!(
        store.get("acme", "crm").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn tampered_or_moved_ciphertexts_fail_closed() {
    let dir = data_dir("tamper");
    let store = SqliteStore::open(&dir, MasterKey::generate().unwrap()).unwrap();
    for id in ["a", "b", "c"] {
        store
            .put("acme", id, "http-request", &bearer_file("https://a.test"))
            .unwrap();
    }
    let db = sqlite(&dir);
    // Flip one bit of a's sealed secrets.
    let mut sealed: Vec<u8> = db
        .query_row("SELECT secrets FROM connections WHERE id = 'a'", [], |r| {
            r.get(0)
        })
        .unwrap();
    *sealed.last_mut().unwrap() ^= 1;
    db.execute(
        "UPDATE connections SET secrets = ?1 WHERE id = 'a'",
        [sealed],
    )
    .unwrap();
    // Copy c's sealed secrets and wrapped key over b's.
    db.execute(
        "UPDATE connections SET (secrets, wrapped_key) = (SELECT secrets, wrapped_key FROM connections WHERE id = 'c') WHERE id = 'b'",
        [],
    )
    .unwrap();
    for id in ["a", "b"] {
        let err = store.get("acme", id).unwrap_err();
        assert!(matches!(err, StoreError::Undecryptable { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot be decrypted"), "{err}");
    }
    assert!(store.get("acme", "c").is_ok());
}

#[test]
fn master_key_rotation_rewraps_every_record() {
    let dir = data_dir("rotate");
    let old = MasterKey::generate().unwrap();
    let old_text = {
        let key_file = dir.join("old.key");
        std::fs::create_dir_all(&dir).unwrap();
        old.write_new_file(&key_file).unwrap();
        std::fs::read_to_string(&key_file).unwrap()
    };
    let mut store = SqliteStore::open(&dir, old).unwrap();
    store
        .put("acme", "a", "http-request", &bearer_file("https://a.test"))
        .unwrap();
    store
        .put("beta", "b", "http-request", &bearer_file("https://b.test"))
        .unwrap();
    let new = MasterKey::generate().unwrap();
    let new_id = new.id();
    assert_eq!(store.rotate_master_key(new).unwrap(), 2);
    assert!(store.get("acme", "a").is_ok() && store.get("beta", "b").is_ok());
    drop(store);
    let stale = SqliteStore::open(&dir, MasterKey::from_base64(&old_text).unwrap()).unwrap();
    let err = stale.get("acme", "a").unwrap_err().to_string();
    assert!(
        err.contains(&new_id),
        "the error names the key the record needs: {err}"
    );
}

#[cfg(unix)]
#[test]
fn the_master_key_file_is_created_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir("keyfile");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("master.key");
    let first = MasterKey::from_env_or_file(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        MasterKey::from_env_or_file(&path).unwrap().id(),
        first.id(),
        "the file is reused"
    );
}

fn courier(dir: &Path) -> Command {
    let mut cmd = Command::new(target_dir().join("debug/courier"));
    cmd.env("COURIER_CACHE_DIR", target_dir().join("courier-test-cache"))
        .env_remove("COURIER_MASTER_KEY");
    cmd.arg("connections").arg("--data-dir").arg(dir);
    cmd
}

async fn cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let mut cmd = courier(dir);
    cmd.args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn connections_cli_set_list_test_delete() {
    let dir = data_dir("cli");
    let server = TestServer::echo().await;
    let file = target_dir()
        .join("test-data")
        .join(format!("cli-conn-{}.toml", std::process::id()));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, bearer_file(&server.url(""))).unwrap();
    let file = file.to_str().unwrap();
    let plugin_dir = plugin("http-request")
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();

    let (ok, out) = cli(
        &dir,
        &[
            "set",
            "crm",
            file,
            "--plugin",
            "http-request",
            "--tenant",
            "acme",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&dir, &["list"]).await;
    assert!(ok, "{out}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"], "crm");
    assert_eq!(listed[0]["secrets"], json!(["token"]));
    assert_eq!(listed[0]["needs_reauthorization"], false);
    for form in encodings(CANARY) {
        assert!(!out.contains(&form), "list shows a secret: {out}");
    }

    let (ok, out) = cli(&dir, &["rotate-master-key"]).await;
    assert!(ok && out.contains("1 connections re-wrapped"), "{out}");
    assert!(!dir.join("master.key.new").exists());

    let input = json!({"url": "/verify"}).to_string();
    let mut cmd = courier(&dir);
    cmd.args([
        "test",
        "crm",
        "--tenant",
        "acme",
        "--call",
        "request",
        "--input",
        &input,
        "--allow-network",
        "127.0.0.1/32",
    ]);
    cmd.env("COURIER_PLUGIN_DIR", &plugin_dir);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains(CANARY), "{stdout}");
    assert_eq!(
        server.received()[0].header("authorization"),
        Some(format!("Bearer {CANARY}").as_str())
    );

    let (ok, out) = cli(&dir, &["delete", "crm", "--tenant", "acme"]).await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&dir, &["delete", "crm", "--tenant", "acme"]).await;
    assert!(!ok && out.contains("no connection `crm`"), "{out}");
}

/// A token server rotating refresh tokens: `refresh-token-N` in, `refresh-token-N+1` out (or 400 for `refresh-token-bad`).
async fn rotating_token_server() -> TestServer {
    TestServer::start(|r| {
        let form = courier_tests::form_pairs(&r.body);
        let sent = form.iter().find(|(k, _)| k == "refresh_token").map(|(_, v)| v.clone()).unwrap_or_default();
        match sent.strip_prefix("refresh-token-").and_then(|n| n.parse::<u32>().ok()) {
            Some(n) => courier_tests::Reply::json(
                200,
                json!({"access_token": format!("access-token-{n}"), "expires_in": 3600, "refresh_token": format!("refresh-token-{}", n + 1)}),
            ),
            None => courier_tests::Reply::json(400, json!({"error": "invalid_grant"})),
        }
    })
    .await
}

fn refresh_file(api: &TestServer, tokens: &TestServer, refresh_token: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'oauth2-refresh-token'\ntoken_url = '{}'\nclient_auth = 'body'\n\
         [secrets]\nclient_id = 'app'\nrefresh_token = '{refresh_token}'",
        api.url(""),
        tokens.url("/token")
    )
}

async fn stored_step(
    host: &courier_host::Host,
    store: &SqliteStore,
    id: &str,
) -> courier_host::StepResult {
    let (plugin, config) = store.get("acme", id).unwrap();
    me_step(host, plugin, config).await
}

#[tokio::test]
async fn rotated_refresh_tokens_and_refusals_are_persisted() {
    let dir = data_dir("rotation");
    let (tokens, api) = (rotating_token_server().await, TestServer::echo().await);
    let store =
        std::sync::Arc::new(SqliteStore::open(&dir, MasterKey::generate().unwrap()).unwrap());
    store
        .put(
            "acme",
            "crm",
            "http-request",
            &refresh_file(&api, &tokens, "refresh-token-1"),
        )
        .unwrap();
    store
        .put(
            "acme",
            "old",
            "http-request",
            &refresh_file(&api, &tokens, "refresh-token-bad"),
        )
        .unwrap();

    let host = host_with(
        host_builder().connection_store(store.clone()),
        &["http-request"],
    )
    .await;
    for _ in 0..2 {
        let r = stored_step(&host, &store, "crm").await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_no_leak(
            &r,
            &["refresh-token-1", "refresh-token-2", "access-token-1"],
        );
    }
    assert_eq!(
        tokens.received().len(),
        1,
        "the rotated connection keeps its cached access token"
    );

    // A new host (nothing cached) uses the rotated refresh token from the store.
    let host = host_with(
        host_builder().connection_store(store.clone()),
        &["http-request"],
    )
    .await;
    let r = stored_step(&host, &store, "crm").await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let second = courier_tests::form_pairs(&tokens.received()[1].body);
    assert!(
        second.contains(&("refresh_token".into(), "refresh-token-2".into())),
        "{second:?}"
    );
    let file = std::fs::read(dir.join("connections.sqlite")).unwrap();
    assert!(
        !file.windows(4).any(|w| w == b"refresh-token-3"),
        "the rotated token is sealed too"
    );

    let r = stored_step(&host, &store, "old").await;
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some("credential"),
        "{r:?}"
    );
    let listed = store.list(Some("acme")).unwrap();
    let flags: Vec<(&str, bool)> = listed
        .iter()
        .map(|c| (c.id.as_str(), c.needs_reauthorization))
        .collect();
    assert_eq!(flags, vec![("crm", false), ("old", true)]);
}

/// A store of the embedder's own behind the seam (connection files kept in
/// memory as TOML tables): the host writes a rotated refresh token and a
/// refusal back through it, as it does to SQLite.
#[derive(Debug, Default)]
struct MemoryStore {
    records: std::sync::Mutex<std::collections::BTreeMap<(String, String), (String, toml::Table)>>,
}

impl MemoryStore {
    fn edit(
        &self,
        tenant: &str,
        id: &str,
        edit: impl FnOnce(&mut toml::Table),
    ) -> Result<(), StoreError> {
        let mut records = self.records.lock().unwrap();
        let (_, table) = records
            .get_mut(&(tenant.into(), id.into()))
            .ok_or_else(|| StoreError::NotFound {
                tenant: tenant.into(),
                id: id.into(),
            })?;
        edit(table);
        Ok(())
    }
}

impl ConnectionStore for MemoryStore {
    fn put<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        plugin: &'a str,
        file_text: &'a str,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut table: toml::Table =
                toml::from_str(file_text).map_err(|e| StoreError::Invalid(e.to_string()))?;
            table.insert("id".into(), id.into());
            table
                .clone()
                .try_into::<courier_host::ConnectionConfig>()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            let key = (tenant.to_owned(), id.to_owned());
            self.records
                .lock()
                .unwrap()
                .insert(key, (plugin.to_owned(), table));
            Ok(())
        })
    }

    fn get<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, (String, courier_host::ConnectionConfig)> {
        Box::pin(async move {
            let records = self.records.lock().unwrap();
            let (plugin, table) =
                records
                    .get(&(tenant.into(), id.into()))
                    .ok_or_else(|| StoreError::NotFound {
                        tenant: tenant.into(),
                        id: id.into(),
                    })?;
            let config = table
                .clone()
                .try_into::<courier_host::ConnectionConfig>()
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            Ok((plugin.clone(), config.loaded_from_store()))
        })
    }

    fn list<'a>(
        &'a self,
        _tenant: Option<&'a str>,
    ) -> StoreFuture<'a, Vec<courier_host::ConnectionInfo>> {
        Box::pin(async { Ok(vec![]) })
    }

    fn delete<'a>(&'a self, tenant: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        let key = (tenant.to_owned(), id.to_owned());
        Box::pin(async move { Ok(self.records.lock().unwrap().remove(&key).is_some()) })
    }

    fn replace_secret<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        key: &'a str,
        value: &'a courier_host::Secret,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.edit(tenant, id, |table| {
                let secrets = table
                    .entry("secrets")
                    .or_insert_with(|| toml::Table::new().into());
                secrets
                    .as_table_mut()
                    .unwrap()
                    .insert(key.into(), value.expose().into());
            })
        })
    }

    fn set_needs_reauthorization<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        needs: bool,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.edit(tenant, id, |table| {
                table.insert("x_needs_reauthorization".into(), needs.into());
            })
        })
    }
}

#[tokio::test]
async fn a_store_of_the_embedders_own_gets_rotations_and_refusals_back() {
    let (tokens, api) = (rotating_token_server().await, TestServer::echo().await);
    let store = std::sync::Arc::new(MemoryStore::default());
    for (id, refresh_token) in [("crm", "refresh-token-1"), ("old", "refresh-token-bad")] {
        let file = refresh_file(&api, &tokens, refresh_token);
        store.put("acme", id, "http-request", &file).await.unwrap();
    }
    let host = host_with(
        host_builder().connection_store(store.clone()),
        &["http-request"],
    )
    .await;
    for (id, outcome) in [("crm", Outcome::Success), ("old", Outcome::Error)] {
        let (plugin, config) = store.get("acme", id).await.unwrap();
        let r = me_step(&host, plugin, config).await;
        assert_eq!(r.outcome, outcome, "{r:?}");
    }
    let records = store.records.lock().unwrap();
    let secret = |id: &str, key: &str| {
        records[&("acme".to_owned(), id.to_owned())].1["secrets"][key]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(
        secret("crm", "refresh_token").as_deref(),
        Some("refresh-token-2"),
        "the rotation reached the store"
    );
    assert_eq!(
        secret("old", "refresh_token").as_deref(),
        Some("refresh-token-bad")
    );
    let flag = |id: &str| {
        records[&("acme".to_owned(), id.to_owned())]
            .1
            .get("x_needs_reauthorization")
            .and_then(|v| v.as_bool())
    };
    assert_eq!(
        (flag("crm"), flag("old")),
        (None, Some(true)),
        "the refusal reached the store"
    );
}
