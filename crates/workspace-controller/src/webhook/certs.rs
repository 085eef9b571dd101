//! The webhook's serving certificate: a private CA and a server certificate for the
//! Service's DNS names, kept in a Secret so every replica serves the same one, renewed well
//! before it expires.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
    jiff::{Timestamp, ToSpan, tz::TimeZone},
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

/// Name of the Secret holding the webhook certificate.
pub const SECRET_NAME: &str = "workspace-webhook-cert";
const KEY: &str = "server-key.pem";
const CERT: &str = "server-cert.pem";
const CA: &str = "ca-cert.pem";
const NOT_AFTER: &str = "kaito.sh/cert-not-after";
const NAMES: &str = "kaito.sh/cert-names";
/// Certificates are renewed when less than this many days remain.
const RENEW_DAYS: i64 = 30;
/// Certificates are issued for this many years.
const VALID_YEARS: i32 = 1;

/// A certificate and key to serve with, and the CA that clients trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingCert {
    /// Server certificate (PEM).
    pub cert_pem: String,
    /// Server private key (PEM).
    pub key_pem: String,
    /// CA certificate (PEM), the webhook configurations' `caBundle`.
    pub ca_pem: String,
    /// When the certificate expires.
    pub not_after: Timestamp,
}

/// Certificate errors.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Generating the certificate failed.
    #[error("cannot generate the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Reading or writing the Secret failed.
    #[error("cannot store the webhook certificate in Secret {SECRET_NAME}: {0}")]
    Store(#[from] kube::Error),
    /// The date arithmetic failed.
    #[error("cannot compute the certificate validity: {0}")]
    Time(#[from] k8s_openapi::jiff::Error),
}

/// DNS names clients use for the webhook Service, plus loopback names for local runs.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ]
}

/// Sets a certificate's validity to whole UTC days from `start` to `end`.
fn validity(params: &mut CertificateParams, start: Timestamp, end: Timestamp) {
    let ymd = |ts: Timestamp| {
        let d = ts.to_zoned(TimeZone::UTC).date();
        let (m, day) = (
            u8::try_from(d.month()).unwrap_or(1),
            u8::try_from(d.day()).unwrap_or(1),
        );
        date_time_ymd(i32::from(d.year()), m, day)
    };
    params.not_before = ymd(start);
    params.not_after = ymd(end);
}

/// Issues a new CA and server certificate for `names`, valid from yesterday for a year.
pub fn generate(names: &[String], now: Timestamp) -> Result<ServingCert, CertError> {
    let start = now.checked_sub(24.hours())?;
    let end = now
        .to_zoned(TimeZone::UTC)
        .checked_add(VALID_YEARS.years())?
        .timestamp();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kaito-workspace-webhook-ca");
    ca.distinguished_name = dn;
    validity(&mut ca, start, end.checked_add(24.hours())?);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let key = KeyPair::generate()?;
    let mut server = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    server.distinguished_name = dn;
    validity(&mut server, start, end);
    let cert = server.signed_by(&key, &issuer)?;
    Ok(ServingCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca_cert.pem(),
        not_after: end,
    })
}

/// Whether a stored certificate covers `names` and has more than the renewal margin left.
pub fn still_good(
    cert: &ServingCert,
    stored_names: &str,
    names: &[String],
    now: Timestamp,
) -> bool {
    let margin = now.checked_add((RENEW_DAYS * 24).hours()).unwrap_or(now);
    stored_names == names.join(",") && cert.not_after > margin
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

/// Reads the certificate from the Secret, issuing and storing a new one when it is missing,
/// for other names, or close to expiry.
pub async fn load_or_issue(
    client: &kube::Client,
    namespace: &str,
    names: &[String],
) -> Result<ServingCert, CertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let now = Timestamp::now();
    if let Some(secret) = api.get_opt(SECRET_NAME).await? {
        let ann = secret.metadata.annotations.clone().unwrap_or_default();
        let data = secret.data.clone().unwrap_or_default();
        let stored = (|| {
            Some(ServingCert {
                cert_pem: text(&data, CERT)?,
                key_pem: text(&data, KEY)?,
                ca_pem: text(&data, CA)?,
                not_after: ann.get(NOT_AFTER)?.parse().ok()?,
            })
        })();
        let stored_names = ann.get(NAMES).cloned().unwrap_or_default();
        if let Some(cert) = stored.filter(|c| still_good(c, &stored_names, names, now)) {
            return Ok(cert);
        }
    }
    let cert = generate(names, now)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.into()),
            namespace: Some(namespace.into()),
            annotations: Some(BTreeMap::from([
                (NOT_AFTER.to_owned(), cert.not_after.to_string()),
                (NAMES.to_owned(), names.join(",")),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            (
                KEY.to_owned(),
                ByteString(cert.key_pem.clone().into_bytes()),
            ),
            (
                CERT.to_owned(),
                ByteString(cert.cert_pem.clone().into_bytes()),
            ),
            (CA.to_owned(), ByteString(cert.ca_pem.clone().into_bytes())),
        ])),
        ..Default::default()
    };
    let params = PatchParams::apply(kaito_api::labels::FIELD_MANAGER_WORKSPACE).force();
    api.patch(SECRET_NAME, &params, &Patch::Apply(&secret))
        .await?;
    tracing::info!(secret = SECRET_NAME, not_after = %cert.not_after, "Issued webhook certificate");
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_cover_the_service_names_and_last_a_year() {
        let names = dns_names("kaito-workspace", "kaito");
        let now = Timestamp::from_second(1_800_000_000).expect("time");
        let cert = generate(&names, now).expect("cert");
        assert!(cert.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.key_pem.contains("PRIVATE KEY"));
        assert_ne!(cert.ca_pem, cert.cert_pem);
        assert!(still_good(&cert, &names.join(","), &names, now));
        let later = now.checked_add((340 * 24).hours()).expect("time");
        assert!(
            !still_good(&cert, &names.join(","), &names, later),
            "renewed a month before expiry"
        );
        assert!(
            !still_good(&cert, "other", &names, now),
            "renewed when the names change"
        );
    }
}
