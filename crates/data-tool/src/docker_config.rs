//! Registry credentials from a Docker config JSON, the format of a Secret of type
//! `kubernetes.io/dockerconfigjson` (mounted as `config.json`).

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Deserialize;

use crate::{Error, reference::DOCKER_HUB};

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Credentials by registry host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerConfig {
    auths: BTreeMap<String, Credentials>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl DockerConfig {
    /// Reads a config file, or `config.json` inside a directory (like `DOCKER_CONFIG`).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let file: PathBuf = if path.is_dir() {
            path.join("config.json")
        } else {
            path.to_path_buf()
        };
        let bad = |reason: String| Error::DockerConfig {
            path: file.clone(),
            reason,
        };
        let bytes = std::fs::read(&file).map_err(|e| bad(e.to_string()))?;
        Self::parse(&bytes).map_err(bad)
    }

    /// Parses the JSON: `{"auths": {"<registry>": {"auth": "<base64 user:pass>"}}}` or with
    /// `username` and `password` fields; the older form without `auths` is read too.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        // The legacy `.dockercfg` form maps registries to entries at the top level.
        let entries = match value.get("auths") {
            Some(auths) => auths.clone(),
            None => value,
        };
        let serde_json::Value::Object(entries) = entries else {
            return Err("expected a JSON object of registries".to_owned());
        };
        let mut auths = BTreeMap::new();
        // Non-object values (`credsStore`, `HttpHeaders` of the legacy form) hold no entry.
        for (key, entry) in entries.into_iter().filter(|(_, v)| v.is_object()) {
            let entry: Entry =
                serde_json::from_value(entry).map_err(|e| format!("auths.{key}: {e}"))?;
            if let Some(credentials) = entry.credentials(&key)? {
                auths.insert(normalize(&key), credentials);
            }
        }
        Ok(DockerConfig { auths })
    }

    /// The credentials for a registry host (as written in an image reference).
    pub fn credentials(&self, registry: &str) -> Option<&Credentials> {
        self.auths.get(&normalize(registry))
    }
}

impl Entry {
    fn credentials(self, key: &str) -> Result<Option<Credentials>, String> {
        if let Some(auth) = self.auth.filter(|a| !a.is_empty()) {
            let decoded = STANDARD
                .decode(auth.trim())
                .map_err(|e| format!("auths.{key}.auth is not base64: {e}"))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| format!("auths.{key}.auth is not UTF-8 text"))?;
            let (username, password) = text
                .split_once(':')
                .ok_or_else(|| format!("auths.{key}.auth is not of the form user:password"))?;
            return Ok(Some(Credentials {
                username: username.to_owned(),
                password: password.to_owned(),
            }));
        }
        match (self.username, self.password) {
            (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
            // An entry with only an identity token or nothing gives no usable credentials.
            _ => Ok(None),
        }
    }
}

/// A registry key as a bare lowercase host: keys may carry a scheme and a path
/// (`https://index.docker.io/v1/`), and Docker Hub goes by several names.
fn normalize(key: &str) -> String {
    let host = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_owned()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, pass: &str) -> Credentials {
        Credentials {
            username: user.to_owned(),
            password: pass.to_owned(),
        }
    }

    #[test]
    fn the_auth_field_holds_base64_user_and_password() {
        let auth = STANDARD.encode("robot:pa:ss");
        let json = format!(r#"{{"auths":{{"myreg.azurecr.io":{{"auth":"{auth}"}}}}}}"#);
        let config = DockerConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(
            config.credentials("myreg.azurecr.io"),
            Some(&creds("robot", "pa:ss"))
        );
        assert_eq!(config.credentials("other.io"), None);
    }

    #[test]
    fn username_and_password_fields_work_without_auth() {
        let json = r#"{"auths":{"https://reg.example:5000/v2/":{"username":"u","password":"p"}}}"#;
        let config = DockerConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(
            config.credentials("reg.example:5000"),
            Some(&creds("u", "p"))
        );
    }

    #[test]
    fn docker_hub_keys_match_images_without_a_registry() {
        let json = r#"{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"}}}"#;
        let config = DockerConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(config.credentials("docker.io"), Some(&creds("u", "p")));
    }

    #[test]
    fn the_legacy_form_without_auths_is_read() {
        let json = r#"{"reg.example":{"username":"u","password":"p"}}"#;
        let config = DockerConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(config.credentials("reg.example"), Some(&creds("u", "p")));
    }

    #[test]
    fn a_broken_auth_field_is_reported_with_its_key() {
        let err = DockerConfig::parse(br#"{"auths":{"r.io":{"auth":"%%%"}}}"#).unwrap_err();
        assert!(err.contains("auths.r.io.auth"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        assert!(!format!("{:?}", creds("u", "hunter2")).contains("hunter2"));
    }
}
