//! The cluster's key material: a CA, the apiserver's serving cert and the service-account keys.

use std::{
    fs,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::{Error, io_error};

/// Names the apiserver's serving certificate is valid for.
const SERVING_NAMES: [&str; 5] = [
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
];

/// The parts of the key material that clients need.
#[derive(Debug)]
pub(crate) struct Pki {
    /// The CA certificate in PEM, trusted by every client.
    pub ca_pem: String,
    /// The CA certificate in DER, for kube clients.
    pub ca_der: Vec<u8>,
}

/// Paths of the written key material.
#[derive(Debug)]
pub(crate) struct PkiFiles {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_public: PathBuf,
    pub service_account_private: PathBuf,
}

/// Generates fresh key material and writes it as PEM files into `dir`.
pub(crate) fn generate(dir: &Path) -> Result<(Pki, PkiFiles), Error> {
    fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;

    let ca_key = KeyPair::generate()?;
    let ca_params = ca_params()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let serving_key = KeyPair::generate()?;
    let serving_cert = serving_params()?.signed_by(&serving_key, &issuer)?;

    // The apiserver verifies and the token controller signs service-account tokens with
    // this pair; ES256 keys are accepted by both.
    let service_account_key = KeyPair::generate()?;

    let files = PkiFiles {
        dir: dir.to_path_buf(),
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_public: dir.join("service-account.pub"),
        service_account_private: dir.join("service-account.key"),
    };
    write(&files.ca_cert, &ca_cert.pem())?;
    write(&files.ca_key, &ca_key.serialize_pem())?;
    write(&files.serving_cert, &serving_cert.pem())?;
    write(&files.serving_key, &serving_key.serialize_pem())?;
    write(
        &files.service_account_public,
        &service_account_key.public_key_pem(),
    )?;
    write(
        &files.service_account_private,
        &service_account_key.serialize_pem(),
    )?;

    let pki = Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().to_vec(),
    };
    Ok((pki, files))
}

fn ca_params() -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kaito-testenv-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn serving_params() -> Result<CertificateParams, Error> {
    let names: Vec<String> = SERVING_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn write(path: &Path, pem: &str) -> Result<(), Error> {
    fs::write(path, pem).map_err(io_error(format!("writing {}", path.display())))
}
