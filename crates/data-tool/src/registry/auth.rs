//! Registry authentication: the `WWW-Authenticate` challenge, and the token request of the
//! distribution token flow.

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use super::{RegistryError, error_text};
use crate::{docker_config::Credentials, error::error_chain};

/// What a registry asked for in its 401 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// A user name and password on every request.
    Basic,
    /// A token from `realm`, for `service` and `scope`.
    Bearer {
        /// Token endpoint URL.
        realm: String,
        /// Service name to pass along.
        service: Option<String>,
        /// Scope the failed request needed.
        scope: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `key=value` pairs separated by commas; values may be quoted (and then hold commas).
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if chars.next().is_none() {
            return params;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
        }
        params.push((key.trim().to_owned(), value.trim().to_owned()));
    }
}

/// The `Authorization` value for Basic authentication.
pub fn basic(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.username, credentials.password);
    format!("Basic {}", STANDARD.encode(pair))
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Asks the token endpoint for a token covering `scopes`, with the credentials when there
/// are any (anonymous tokens are enough to pull public images).
pub async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credentials: Option<&Credentials>,
) -> Result<String, RegistryError> {
    let what = format!("getting a token from {realm}");
    let mut url = Url::parse(realm).map_err(|e| RegistryError::Protocol {
        what: what.clone(),
        detail: format!("the challenge's realm is not a URL: {e}"),
    })?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        for scope in scopes {
            query.append_pair("scope", scope);
        }
    }
    let mut request = http.get(url);
    if let Some(credentials) = credentials {
        request = request.header(reqwest::header::AUTHORIZATION, basic(credentials));
    }
    let response = request.send().await.map_err(|e| RegistryError::Transport {
        what: what.clone(),
        detail: error_chain(&e.without_url()),
    })?;
    let status = response.status();
    if status != StatusCode::OK {
        let detail = error_text(response).await;
        return Err(RegistryError::Status {
            what,
            status,
            detail,
        });
    }
    let body: TokenResponse = response.json().await.map_err(|e| RegistryError::Protocol {
        what: what.clone(),
        detail: format!(
            "unreadable token response: {}",
            error_chain(&e.without_url())
        ),
    })?;
    body.token
        .or(body.access_token)
        .filter(|t| !t.is_empty())
        .ok_or(RegistryError::Protocol {
            what,
            detail: "the token response holds no token".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_gives_realm_service_and_a_scope_with_commas() {
        let header = concat!(
            r#"Bearer realm="https://auth.example/token",service="registry.example","#,
            r#"scope="repository:a/b:pull,push""#
        );
        assert_eq!(
            parse_challenge(header),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".to_owned(),
                service: Some("registry.example".to_owned()),
                scope: Some("repository:a/b:pull,push".to_owned()),
            })
        );
    }

    #[test]
    fn unquoted_values_and_any_case_are_accepted() {
        let challenge = parse_challenge("bearer realm=https://a.example/t, service=s").unwrap();
        assert_eq!(
            challenge,
            Challenge::Bearer {
                realm: "https://a.example/t".to_owned(),
                service: Some("s".to_owned()),
                scope: None,
            }
        );
    }

    #[test]
    fn basic_and_unknown_schemes_are_told_apart() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn basic_authorization_is_base64_of_user_colon_password() {
        let credentials = Credentials {
            username: "aladdin".to_owned(),
            password: "open sesame".to_owned(),
        };
        assert_eq!(basic(&credentials), "Basic YWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }
}
