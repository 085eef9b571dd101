//! Rules on data sources (tuning input, adapters) and destinations (tuning output).

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use url::{Host, Url};

use super::{
    FieldErrors,
    names::{check_secret_name, check_secret_names},
};
use crate::workspace::{DataDestination, DataSource};

/// Host names that reach the machine itself or a cloud metadata service.
const LOCAL_OR_METADATA_HOSTS: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "metadata",
    "metadata.google.internal",
    "metadata.azure.com",
    "instance-data",
    "instance-data.ec2.internal",
];

pub(super) fn check_source(src: &DataSource, path: &str, errs: &mut FieldErrors) {
    if src.volume_source.is_some() {
        errs.push(
            format!("{path}.volumeSource"),
            "Volume support is not implemented yet",
        );
        return;
    }
    let given = [src.urls.is_some(), src.image.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        errs.push(
            path,
            "Exactly one of URLs, Volume, or Image must be specified",
        );
        return;
    }
    if let Some(image) = &src.image {
        check_image(image, &format!("{path}.image"), "input", errs);
    }
    check_secret_names(
        src.image_pull_secrets.as_deref().unwrap_or_default(),
        &format!("{path}.imagePullSecrets"),
        errs,
    );
    if let Some(urls) = &src.urls {
        check_urls(urls, &format!("{path}.urls"), errs);
    }
}

pub(super) fn check_destination(dst: &DataDestination, path: &str, errs: &mut FieldErrors) {
    if dst.volume_source.is_some() {
        errs.push(
            format!("{path}.volumeSource"),
            "Volume support is not implemented yet",
        );
        return;
    }
    let Some(image) = dst.image.as_deref().filter(|i| !i.is_empty()) else {
        errs.push(path, "Exactly one of Volume or Image must be specified");
        return;
    };
    check_image(image, &format!("{path}.image"), "output", errs);
    match dst.image_push_secret.as_deref().filter(|s| !s.is_empty()) {
        None => errs.push(
            format!("{path}.imagePushSecret"),
            "Must specify imagePushSecret with destination image",
        ),
        Some(secret) => check_secret_name(secret, &format!("{path}.imagePushSecret"), errs),
    }
}

/// Rules 27 and 28: `registry/path/repository:tag`, every path component lowercase.
pub(super) fn check_image(image: &str, path: &str, which: &str, errs: &mut FieldErrors) {
    let Some((name, tag)) = split_image(image) else {
        errs.push(
            path,
            format!(
                "Invalid image format {image:?}, require full {which} image URL such as \
                 myregistry.azurecr.io/adapters/name:0.0.1 (registry, repository and tag)"
            ),
        );
        return;
    };
    let repository = name.rsplit('/').next().unwrap_or_default();
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        errs.push(
            path,
            format!(
                "Repository name must be lowercase: {repository:?} in {image:?} is not a valid \
                 image reference"
            ),
        );
        return;
    }
    let components_ok = name.split('/').skip(1).all(is_path_component);
    if !components_ok || !is_tag(tag) {
        errs.push(
            path,
            format!(
                "Invalid image format {image:?}: path components must be lowercase letters and \
                 digits separated by '.', '_' or '-', and the tag at most 128 word characters"
            ),
        );
    }
}

/// Splits `name:tag` where the name has a registry/path part, as `^(.+/[^:/]+):([^:/]+)$`.
fn split_image(image: &str) -> Option<(&str, &str)> {
    let (name, tag) = image.rsplit_once(':')?;
    let (prefix, repo) = name.rsplit_once('/')?;
    let ok = !prefix.is_empty()
        && !repo.is_empty()
        && !repo.contains(':')
        && !tag.is_empty()
        && !tag.contains('/');
    ok.then_some((name, tag))
}

fn is_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes
            .iter()
            .all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
        && !c.contains("..")
}

fn is_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_urls(urls: &[String], path: &str, errs: &mut FieldErrors) {
    if urls.is_empty() {
        errs.push(path, "at least one URL is required");
    }
    let mut basenames = BTreeSet::new();
    for (i, raw) in urls.iter().enumerate() {
        let at = format!("{path}[{i}]");
        match check_data_url(raw) {
            Err(message) => errs.push(at, message),
            Ok(url) => {
                let base = url_basename(&url);
                if !basenames.insert(base.clone()) {
                    errs.push(
                        at,
                        format!("two URLs download to the same file name {base:?}; rename one"),
                    );
                }
            }
        }
    }
}

/// The file name a URL downloads to: its last path segment without the query.
pub fn url_basename(url: &Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .unwrap_or("data")
        .to_owned()
}

/// Rule 29: http(s) only, and never a local or metadata endpoint. The download step applies
/// it again to every redirect it follows.
pub fn check_data_url(raw: &str) -> Result<Url, String> {
    let url =
        Url::parse(raw.trim()).map_err(|e| format!("invalid data source URL {raw:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "data source URL must use HTTP or HTTPS, got {:?}",
            url.scheme()
        ));
    }
    match url.host() {
        None => Err(format!("invalid data source URL {raw:?}: no host")),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if LOCAL_OR_METADATA_HOSTS.contains(&d.as_str()) || d.ends_with(".localhost") {
                Err(format!(
                    "data source URL must not target a local or metadata endpoint: {d}"
                ))
            } else {
                Ok(url)
            }
        }
        Some(Host::Ipv4(ip)) => check_data_ip(IpAddr::V4(ip)).map(|()| url),
        Some(Host::Ipv6(ip)) => check_data_ip(IpAddr::V6(ip)).map(|()| url),
    }
}

/// Whether training data may come from `ip`: not loopback, private, link-local, the
/// cloud's platform endpoint, or any of these behind an IPv6 mapping. The download step
/// applies it to every address a host name resolves to.
pub fn check_data_ip(ip: IpAddr) -> Result<(), String> {
    let blocked = match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| nat64_embedded(v6)) {
            Some(v4) => is_blocked_v4(v4),
            None => is_blocked_v6(v6),
        },
    };
    if blocked {
        Err(format!(
            "data source URL must not target a loopback, private, or link-local address: {ip}"
        ))
    } else {
        Ok(())
    }
}

/// Azure's platform endpoint (wireserver), reachable from every VM.
const AZURE_PLATFORM_ENDPOINT: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);

/// The IPv4 address inside an address of the well-known NAT64 prefix `64:ff9b::/96`.
fn nat64_embedded(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0])
        .then(|| Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])))
}

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip == AZURE_PLATFORM_ENDPOINT
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || (a == 100 && (64..128).contains(&b))
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
}
