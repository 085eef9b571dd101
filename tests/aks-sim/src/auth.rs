//! The Azure AD stand-in: the v2.0 token endpoint for client credentials (a client secret or
//! a workload-identity assertion), the OpenID metadata some clients read first, and the
//! bearer-token check of every ARM call.
//!
//! `azure_identity` 1.x posts the form to `{authority host}/{tenant}/oauth2/v2.0/token` and
//! reads nothing else. It parses `error_description` as a borrowed string, so descriptions here
//! never contain characters JSON would escape (AAD's own carry `\r\n`, which that parse
//! rejects).

use std::collections::{HashMap, HashSet};

use axum::{
    Json,
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde_json::{Value, json};

use crate::{arm::error::ArmError, config::AuthConfig, ids::guid};

/// The audience of tokens for ARM.
pub(crate) const ARM_AUDIENCE: &str = "https://management.azure.com/";
/// The resources whose `/.default` scope yields an ARM token.
const ARM_RESOURCES: [&str; 2] = [
    "https://management.azure.com",
    "https://management.core.windows.net",
];
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An issued access token.
#[derive(Clone, Debug)]
struct Issued {
    client_id: String,
    audience: String,
    expires: Timestamp,
}

/// Who called ARM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    pub client_id: String,
}

/// A token request refused the way AAD refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AadError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl AadError {
    fn bad(error: &'static str, code: u32, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            description: description.into(),
        }
    }

    fn unauthorized(code: u32, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            code,
            description: description.into(),
        }
    }

    fn missing(parameter: &str) -> Self {
        let description = format!("The request body lacks the required parameter '{parameter}'.");
        Self::bad("invalid_request", 900144, description)
    }

    /// A transient failure of the token service itself (for outages and faults).
    pub fn unavailable(status: StatusCode) -> Self {
        let description = "The token service is temporarily unavailable. Try again later.";
        Self {
            status,
            error: "temporarily_unavailable",
            code: 50196,
            description: description.into(),
        }
    }

    pub fn into_response(self, authority: &str) -> Response {
        let (trace, correlation) = (guid(), guid());
        let now = Timestamp::now().strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        let code = self.code;
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{code}: {} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}",
                self.description
            ),
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("{authority}error?code={code}"),
        });
        (self.status, Json(body)).into_response()
    }
}

/// Issued tokens and the token endpoint's rules.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: HashMap<String, Issued>,
}

/// One token request, already split into form fields.
pub(crate) struct TokenRequest<'a> {
    pub tenant: &'a str,
    pub form_encoded: bool,
    pub body: &'a [u8],
}

impl Tokens {
    /// Answers a token request: the AAD success body or its error.
    pub fn grant(
        &mut self,
        auth: &AuthConfig,
        reject_assertions: bool,
        lifetime_secs: u64,
        request: &TokenRequest<'_>,
    ) -> Result<Value, AadError> {
        check_tenant(auth, request.tenant)?;
        let form = Form(if request.form_encoded {
            url::form_urlencoded::parse(request.body)
                .into_owned()
                .collect()
        } else {
            HashMap::new()
        });
        let field = |name: &str| form.field(name);
        match field("grant_type") {
            None => return Err(AadError::missing("grant_type")),
            Some("client_credentials") => {}
            Some(other) => {
                let description = format!("The grant type '{other}' is not supported here.");
                return Err(AadError::bad("unsupported_grant_type", 70003, description));
            }
        }
        let client_id = field("client_id").ok_or_else(|| AadError::missing("client_id"))?;
        check_client(auth, request.tenant, client_id)?;
        let audience = audience(field("scope"))?;
        check_credential(auth, reject_assertions, &form)?;
        Ok(self.issue(request.tenant, client_id, &audience, lifetime_secs))
    }

    fn issue(
        &mut self,
        tenant: &str,
        client_id: &str,
        audience: &str,
        lifetime_secs: u64,
    ) -> Value {
        let now = Timestamp::now();
        let lifetime = i64::try_from(lifetime_secs).unwrap_or(i64::MAX);
        let expires = now
            .saturating_add(SignedDuration::from_secs(lifetime))
            .unwrap_or(now);
        let token = jwt(tenant, client_id, audience, now, expires);
        self.issued.retain(|_, issued| issued.expires > now);
        let issued = Issued {
            client_id: client_id.to_owned(),
            audience: audience.to_owned(),
            expires,
        };
        self.issued.insert(token.clone(), issued);
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime_secs,
            "ext_expires_in": lifetime_secs,
            "access_token": token,
        })
    }

    /// A valid ARM token without the round trip, for tests and tools.
    pub fn mint(&mut self, client_id: &str, lifetime_secs: u64) -> String {
        let body = self.issue("common", client_id, ARM_AUDIENCE, lifetime_secs);
        body["access_token"].as_str().unwrap_or_default().to_owned()
    }

    /// Makes every issued token expired.
    pub fn expire_all(&mut self) {
        let past = Timestamp::now()
            .saturating_sub(SignedDuration::from_secs(1))
            .unwrap_or_default();
        for issued in self.issued.values_mut() {
            issued.expires = past;
        }
    }

    /// Checks the `Authorization` header of an ARM request.
    pub fn check(&self, header: Option<&HeaderValue>, challenge: &str) -> Result<Caller, ArmError> {
        let unauthorized = |code: &str, message: String| {
            let value = format!(
                "Bearer authorization_uri=\"{challenge}\", error=\"invalid_token\", \
                 error_description=\"{code}\""
            );
            ArmError::new(StatusCode::UNAUTHORIZED, code, message)
                .with_header("www-authenticate", value)
        };
        let Some(header) = header else {
            let message =
                "Authentication failed: the request has no Authorization header.".to_owned();
            return Err(unauthorized("AuthenticationFailed", message));
        };
        let text = header.to_str().unwrap_or_default();
        let token = text
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"));
        let Some((_, token)) = token else {
            let message =
                "Authentication failed: the Authorization header is not 'Bearer <token>'.";
            return Err(unauthorized("AuthenticationFailed", message.to_owned()));
        };
        let Some(issued) = self.issued.get(token.trim()) else {
            let message = "The access token is invalid: this server did not issue it.".to_owned();
            return Err(unauthorized("InvalidAuthenticationToken", message));
        };
        let now = Timestamp::now();
        if issued.expires <= now {
            let message = format!(
                "The access token expired at {}; the time is now {now}.",
                issued.expires
            );
            return Err(unauthorized("ExpiredAuthenticationToken", message));
        }
        if issued.audience != ARM_AUDIENCE {
            let message = format!(
                "The access token was obtained for the audience '{}', not for '{ARM_AUDIENCE}'.",
                issued.audience
            );
            return Err(unauthorized("InvalidAuthenticationTokenAudience", message));
        }
        Ok(Caller {
            client_id: issued.client_id.clone(),
        })
    }
}

/// Whether a tenant id is well formed (letters, digits, `.` and `-`), as clients also check.
pub(crate) fn is_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

fn check_tenant(auth: &AuthConfig, tenant: &str) -> Result<(), AadError> {
    let known = auth
        .tenant
        .as_deref()
        .is_none_or(|known| known.eq_ignore_ascii_case(tenant));
    if is_tenant(tenant) && known {
        return Ok(());
    }
    let description = format!("Unknown tenant '{tenant}': check the tenant id and the cloud.");
    Err(AadError::bad("invalid_request", 90002, description))
}

fn check_client(auth: &AuthConfig, tenant: &str, client_id: &str) -> Result<(), AadError> {
    if auth
        .client_id
        .as_deref()
        .is_none_or(|known| known == client_id)
    {
        return Ok(());
    }
    let description =
        format!("No application with client id '{client_id}' exists in tenant '{tenant}'.");
    Err(AadError::bad("unauthorized_client", 700016, description))
}

/// The audience a `.default` scope asks for.
fn audience(scope: Option<&str>) -> Result<String, AadError> {
    let scope = scope.ok_or_else(|| AadError::missing("scope"))?;
    let ignored: HashSet<&str> = ["openid", "profile", "offline_access"].into();
    let resources: Vec<&str> = scope
        .split(' ')
        .filter(|s| !s.is_empty() && !ignored.contains(s))
        .collect();
    let [resource] = resources.as_slice() else {
        let description = format!("The scope '{scope}' must name exactly one resource.");
        return Err(AadError::bad("invalid_scope", 70011, description));
    };
    let Some(resource) = resource.strip_suffix("/.default") else {
        let description = format!(
            "The scope '{scope}' is not valid: client credential flows need the resource \
             identifier followed by /.default."
        );
        return Err(AadError::bad("invalid_scope", 1002012, description));
    };
    let resource = resource.trim_end_matches('/');
    if ARM_RESOURCES
        .iter()
        .any(|arm| arm.eq_ignore_ascii_case(resource))
    {
        Ok(ARM_AUDIENCE.to_owned())
    } else {
        Ok(format!("{resource}/"))
    }
}

/// The fields of a form-encoded body.
struct Form(HashMap<String, String>);

impl Form {
    /// A non-empty field.
    fn field(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }
}

fn check_credential(
    auth: &AuthConfig,
    reject_assertions: bool,
    form: &Form,
) -> Result<(), AadError> {
    let field = |name: &str| form.field(name);
    if let Some(assertion) = field("client_assertion") {
        if field("client_assertion_type") != Some(ASSERTION_TYPE) {
            let description = format!("client_assertion_type must be '{ASSERTION_TYPE}'.");
            return Err(AadError::bad("invalid_request", 900144, description));
        }
        let parts: Vec<&str> = assertion.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|part| part.is_empty()) {
            let description = "The client assertion is not a JWT: it is invalid or malformed.";
            return Err(AadError::bad("invalid_request", 50027, description));
        }
        if reject_assertions {
            let description = "No federated identity credential of the application matches \
                               the issuer, subject and audience of the assertion.";
            return Err(AadError::bad("invalid_request", 70021, description));
        }
        return Ok(());
    }
    let Some(secret) = field("client_secret") else {
        let description =
            "The client_credentials grant needs a client_secret or a client_assertion.";
        return Err(AadError::unauthorized(7000216, description));
    };
    if auth
        .client_secret
        .as_deref()
        .is_some_and(|known| known != secret)
    {
        let description = "The client secret is wrong: send the secret value, not its id.";
        return Err(AadError::unauthorized(7000215, description));
    }
    Ok(())
}

/// A JWT-shaped access token whose claims tell who it was issued to (unsigned: only this
/// server reads it).
fn jwt(
    tenant: &str,
    client_id: &str,
    audience: &str,
    now: Timestamp,
    expires: Timestamp,
) -> String {
    let header = json!({ "typ": "JWT", "alg": "RS256", "kid": "aks-sim" });
    let claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now.as_second(),
        "nbf": now.as_second(),
        "exp": expires.as_second(),
        "appid": client_id,
        "tid": tenant,
        "sub": client_id,
        "ver": "1.0",
    });
    let signature: [u8; 32] = rand::rng().random();
    let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.{}",
        encode(&header),
        encode(&claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The OpenID configuration document of a tenant.
pub(crate) fn openid_configuration(authority: &str, tenant: &str) -> Value {
    let base = format!("{authority}{tenant}");
    json!({
        "issuer": format!("{base}/v2.0"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported":
            ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid"],
        "tenant_region_scope": null,
        "cloud_instance_name": "aks-sim",
    })
}

/// The answer of AAD's instance discovery for this host.
pub(crate) fn instance_discovery(authority: &str, host: &str, tenant: &str) -> Value {
    json!({
        "tenant_discovery_endpoint":
            format!("{authority}{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{ "preferred_network": host, "preferred_cache": host, "aliases": [host] }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in fields {
            serializer.append_pair(key, value);
        }
        serializer.finish().into_bytes()
    }

    fn grant(auth: &AuthConfig, fields: &[(&str, &str)]) -> Result<Value, AadError> {
        let body = form(fields);
        let request = TokenRequest {
            tenant: "tenant-1",
            form_encoded: true,
            body: &body,
        };
        Tokens::default().grant(auth, false, 3599, &request)
    }

    const SECRET: [(&str, &str); 4] = [
        ("grant_type", "client_credentials"),
        ("client_id", "app"),
        ("scope", "https://management.azure.com/.default"),
        ("client_secret", "s3cret"),
    ];

    #[test]
    fn a_client_secret_request_gets_a_bearer_token() {
        let body = grant(&AuthConfig::default(), &SECRET).unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
    }

    #[test]
    fn a_wrong_secret_or_client_is_refused_like_aad() {
        let auth = AuthConfig {
            client_secret: Some("other".into()),
            ..AuthConfig::default()
        };
        let error = grant(&auth, &SECRET).unwrap_err();
        assert_eq!(
            (error.status, error.error, error.code),
            (StatusCode::UNAUTHORIZED, "invalid_client", 7000215)
        );
        let auth = AuthConfig {
            client_id: Some("known".into()),
            ..AuthConfig::default()
        };
        assert_eq!(grant(&auth, &SECRET).unwrap_err().code, 700016);
    }

    #[test]
    fn scopes_need_a_single_default_resource() {
        let mut fields = SECRET;
        fields[2] = ("scope", "https://management.azure.com/user_impersonation");
        assert_eq!(
            grant(&AuthConfig::default(), &fields).unwrap_err().error,
            "invalid_scope"
        );
        fields[2] = ("scope", "");
        assert_eq!(
            grant(&AuthConfig::default(), &fields).unwrap_err().code,
            900144
        );
    }

    #[test]
    fn an_assertion_must_look_like_a_jwt_and_match_a_federated_credential() {
        let mut fields = SECRET;
        fields[3] = ("client_assertion", "not-a-jwt");
        let mut with_type = fields.to_vec();
        with_type.push(("client_assertion_type", ASSERTION_TYPE));
        assert_eq!(
            grant(&AuthConfig::default(), &with_type).unwrap_err().code,
            50027
        );
        with_type[3] = ("client_assertion", "a.b.c");
        assert!(grant(&AuthConfig::default(), &with_type).is_ok());
        let body = form(&with_type);
        let request = TokenRequest {
            tenant: "t",
            form_encoded: true,
            body: &body,
        };
        let refused = Tokens::default().grant(&AuthConfig::default(), true, 60, &request);
        assert_eq!(refused.unwrap_err().code, 70021);
    }

    #[test]
    fn arm_accepts_only_unexpired_tokens_issued_for_it() {
        let mut tokens = Tokens::default();
        let token = tokens.mint("app", 60);
        let header = |token: &str| HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        assert_eq!(
            tokens.check(Some(&header(&token)), "x").unwrap().client_id,
            "app"
        );
        assert_eq!(
            tokens.check(None, "x").unwrap_err().body.code,
            "AuthenticationFailed"
        );
        let forged = tokens.check(Some(&header("a.b.c")), "x").unwrap_err();
        assert_eq!(
            (forged.status, forged.body.code.as_str()),
            (StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken")
        );
        tokens.expire_all();
        let expired = tokens.check(Some(&header(&token)), "x").unwrap_err();
        assert_eq!(expired.body.code, "ExpiredAuthenticationToken");
    }

    #[test]
    fn error_descriptions_need_no_json_escapes() {
        let response = AadError::missing("grant_type").into_response("https://127.0.0.1/");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let description = AadError::missing("grant_type").description;
        assert!(!description.contains(['"', '\\', '\n', '\r']));
    }
}
