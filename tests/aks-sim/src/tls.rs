//! A fresh test CA and a serving certificate for 127.0.0.1 and localhost, made at start.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{
    ServerConfig,
    pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
};

use crate::Error;

/// Names the serving certificate is valid for.
const SERVING_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "::1"];

/// What the server serves with and what clients must trust.
pub(crate) struct Tls {
    pub ca_pem: String,
    pub server_config: Arc<ServerConfig>,
}

/// Generates the CA and the serving certificate and builds the rustls config (ring, so that it
/// does not depend on which process-wide provider is installed).
pub(crate) fn generate() -> Result<Tls, Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "aks-sim test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let serving_key = KeyPair::generate()?;
    let names: Vec<String> = SERVING_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut serving_params = CertificateParams::new(names)?;
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "aks-sim");
    serving_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving_params.signed_by(&serving_key, &issuer)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(serving_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![serving_cert.der().clone()], key)?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca_cert.pem(),
        server_config: Arc::new(server_config),
    })
}
