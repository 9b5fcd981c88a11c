//! The compiled-component cache: a second load does not recompile.

use courier_host::{CompileSource, Host};
use courier_tests::plugin;

#[tokio::test]
async fn second_load_is_served_from_the_cache() {
    let dir = std::env::temp_dir().join(format!("courier-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = Host::builder()
        .cache_dir(&dir)
        .build()
        .unwrap()
        .load_plugin_file(&plugin("http-request"))
        .await
        .unwrap();
    let second = Host::builder()
        .cache_dir(&dir)
        .build()
        .unwrap()
        .load_plugin_file(&plugin("http-request"))
        .await
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(first.source, CompileSource::Compiled);
    assert_eq!(second.source, CompileSource::Cache);
    eprintln!(
        "compile {:.1} ms, from cache {:.1} ms",
        first.compile_ms, second.compile_ms
    );
    assert!(
        second.compile_ms * 5.0 < first.compile_ms,
        "a cache hit should be far cheaper than compiling: {:.1} ms vs {:.1} ms",
        second.compile_ms,
        first.compile_ms
    );
}
