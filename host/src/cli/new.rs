//! `courier new NAME`: writes a plugin crate from the template embedded in
//! the binary. The crate builds with `courier build` and passes its own
//! `cargo test` (its calls run against `courier_sdk::testing`) at once.
//!
//! The SDK is not published to a registry, so the crate depends on it by
//! path: `--sdk PATH`, else `$COURIER_SDK`, else the `guest-sdk/` of the
//! source tree this binary was built from (its path is compiled in, and
//! checked to still hold the SDK).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The template's files: where each goes in the crate, and its text.
const FILES: [(&str, &str); 3] = [
    ("Cargo.toml", include_str!("template/Cargo.toml.in")),
    ("src/lib.rs", include_str!("template/lib.rs.in")),
    (".gitignore", include_str!("template/gitignore.in")),
];

/// The environment variable naming the SDK's directory.
const SDK_VAR: &str = "COURIER_SDK";

/// The SDK of the source tree this binary was built from.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");

/// Writes the crate `name` into the directory `dir` (created if needed)
/// and returns the files written. No file that exists is overwritten.
pub(crate) fn new_plugin(
    name: &str,
    dir: &Path,
    sdk: Option<PathBuf>,
) -> anyhow::Result<Vec<PathBuf>> {
    check_name(name)?;
    let sdk = sdk_dir(sdk)?;
    let sdk = sdk
        .to_str()
        .with_context(|| format!("the SDK path {} is not UTF-8", sdk.display()))?;
    let mut written = Vec::new();
    for (file, template) in FILES {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = template
            .replace("{{name}}", name)
            .replace("{{sdk}}", &toml_escape(sdk));
        let mut out = match fs::File::create_new(&path) {
            Ok(out) => out,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                bail!(
                    "{} exists already; nothing there is overwritten",
                    path.display()
                )
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        };
        std::io::Write::write_all(&mut out, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A plugin and crate name: a lowercase letter, then lowercase letters,
/// digits and single `-`.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        bail!(
            "`{name}` cannot name a plugin: use lowercase letters, digits and single `-`, \
             starting with a letter (`acme-crm`)"
        );
    }
    Ok(())
}

/// The SDK's directory, absolute, checked to hold the `courier-sdk` crate.
fn sdk_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let (dir, from) = match given {
        Some(dir) => (dir, "--sdk"),
        None => match std::env::var_os(SDK_VAR) {
            Some(dir) => (PathBuf::from(dir), SDK_VAR),
            None => (
                PathBuf::from(BUILT_SDK),
                "the source tree courier was built from",
            ),
        },
    };
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    if !manifest
        .lines()
        .any(|l| l.trim() == r#"name = "courier-sdk""#)
    {
        bail!(
            "no courier-sdk crate at {} (from {from}): pass --sdk PATH to the SDK's directory \
             (`guest-sdk/` in Courier's source tree)",
            dir.display()
        );
    }
    fs::canonicalize(&dir).with_context(|| format!("resolving {}", dir.display()))
}

/// `text` as the inside of a TOML basic string.
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "acme-crm", "v2-api"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Acme", "2fa", "a_b", "a-", "a--b", "a b", "-a"] {
            let error = check_name(bad).unwrap_err().to_string();
            assert!(error.contains("lowercase letters"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_crate_is_written_once_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("courier-new-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let written = new_plugin("acme", &dir, Some(PathBuf::from(BUILT_SDK))).unwrap();
        assert_eq!(written.len(), 3);
        let cargo = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let parsed: toml::Table = toml::from_str(&cargo).unwrap();
        assert_eq!(parsed["package"]["name"].as_str(), Some("acme"));
        let sdk = parsed["dependencies"]["courier-sdk"]["path"]
            .as_str()
            .unwrap();
        assert_eq!(Path::new(sdk), fs::canonicalize(BUILT_SDK).unwrap());
        let lib = fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains(r#"Plugin::new("acme""#) && !lib.contains("{{"));
        let again = new_plugin("acme", &dir, Some(PathBuf::from(BUILT_SDK))).unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        let no_sdk = new_plugin("acme", &dir.join("x"), Some(dir.clone())).unwrap_err();
        assert!(
            no_sdk.to_string().contains("no courier-sdk crate"),
            "{no_sdk}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
