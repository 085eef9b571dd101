//! Who may talk to the cluster: static bearer tokens, kubeconfig files and kube client configs.

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD};
use kube::Config;
use rand::{Rng, distr::Alphanumeric};
use secrecy::SecretString;
use serde_json::json;

use crate::{Error, io_error};

/// The user name of the cluster administrator.
pub const ADMIN_USER: &str = "kaito-testenv-admin";

/// The name of the cluster and context in every kubeconfig written here.
const CONTEXT: &str = "kaito-testenv";

/// An identity the apiserver authenticates by a static bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user name, e.g. `system:serviceaccount:kaito-system:kaito-workspace`.
    pub name: String,
    /// The groups the user belongs to.
    pub groups: Vec<String>,
}

impl Identity {
    /// A service account's identity, with the groups the apiserver gives service accounts.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ],
        }
    }

    /// A plain user in the given groups (plus `system:authenticated`).
    pub fn user(name: &str, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|group| (*group).to_owned()).collect();
        groups.push("system:authenticated".to_owned());
        Self {
            name: name.to_owned(),
            groups,
        }
    }

    /// The all-powerful administrator.
    pub(crate) fn admin() -> Self {
        Self::user(ADMIN_USER, &["system:masters"])
    }
}

/// An identity with its bearer token.
#[derive(Clone, Debug)]
pub(crate) struct Credential {
    pub identity: Identity,
    pub token: String,
}

impl Credential {
    /// Gives `identity` a fresh random token.
    pub(crate) fn issue(identity: Identity) -> Self {
        let token = rand::rng()
            .sample_iter(Alphanumeric)
            .take(40)
            .map(char::from)
            .collect();
        Self { identity, token }
    }

    /// A kube client config that authenticates as this credential.
    pub(crate) fn client_config(&self, server_url: &str, ca_der: &[u8]) -> Result<Config, Error> {
        let url = server_url
            .parse()
            .map_err(|_| Error::InvalidUrl(server_url.to_owned()))?;
        let mut config = Config::new(url);
        config.root_cert = Some(vec![ca_der.to_vec()]);
        config.auth_info.token = Some(SecretString::from(self.token.clone()));
        Ok(config)
    }
}

/// Writes the apiserver's `--token-auth-file`: `token,user,uid,"group,group"` per line.
pub(crate) fn write_token_file(path: &Path, credentials: &[Credential]) -> Result<(), Error> {
    let lines: Vec<String> = credentials
        .iter()
        .map(|Credential { identity, token }| {
            let groups = identity.groups.join(",");
            format!("{token},{name},{name},\"{groups}\"\n", name = identity.name)
        })
        .collect();
    write_private(path, &lines.concat())
}

/// Writes a kubeconfig that kubectl, helm and the components use to reach the apiserver.
pub(crate) fn write_kubeconfig(
    path: &Path,
    server_url: &str,
    ca_pem: &str,
    credential: &Credential,
) -> Result<(), Error> {
    let user = &credential.identity.name;
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CONTEXT,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": STANDARD.encode(ca_pem),
            },
        }],
        "users": [{ "name": user, "user": { "token": credential.token } }],
        "contexts": [{
            "name": CONTEXT,
            "context": { "cluster": CONTEXT, "user": user, "namespace": "default" },
        }],
        "current-context": CONTEXT,
    });
    write_private(path, &yaml_serde::to_string(&kubeconfig)?)
}

/// Writes a secret-holding file readable by its owner only (helm warns about anything wider).
fn write_private(path: &Path, contents: &str) -> Result<(), Error> {
    let failed = || io_error(format!("writing {}", path.display()));
    fs::write(path, contents).map_err(failed())?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(failed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_account_identity_has_the_groups_the_apiserver_would_give_it() {
        let identity = Identity::service_account("kaito", "workspace");
        assert_eq!(identity.name, "system:serviceaccount:kaito:workspace");
        assert_eq!(
            identity.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:kaito",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn the_token_file_quotes_the_group_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        let credential = Credential {
            identity: Identity::user("alice", &["devs"]),
            token: "t0k".to_owned(),
        };
        write_token_file(&path, &[credential]).unwrap();
        let written = fs::read_to_string(&path).unwrap();
        assert_eq!(written, "t0k,alice,alice,\"devs,system:authenticated\"\n");
    }

    #[test]
    fn issued_tokens_differ() {
        let first = Credential::issue(Identity::admin());
        let second = Credential::issue(Identity::admin());
        assert_ne!(first.token, second.token);
        assert_eq!(first.token.len(), 40);
    }
}
