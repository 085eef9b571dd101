//! Name rules: Workspace names become Service, Deployment and container names.

use super::{FieldErrors, MAX_WORKSPACE_NAME_LEN};
use crate::workspace::Workspace;

/// Whether `s` is a DNS-1035 label: lowercase letters, digits and `-`, starting with a
/// letter, ending with a letter or digit, at most 63 characters.
pub fn is_dns1035_label(s: &str) -> bool {
    s.len() <= 63 && s.starts_with(|c: char| c.is_ascii_lowercase()) && is_label_body(s)
}

/// Whether `s` is a DNS-1123 label: lowercase letters, digits and `-`, starting and ending
/// with a letter or digit, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && is_label_body(s)
}

fn is_label_body(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
}

/// Whether `s` is a valid label value: empty, or at most 63 letters, digits, `-`, `_` and
/// `.`, starting and ending with a letter or digit.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

/// Whether `s` is a valid label key: a name as [`is_label_value`] (not empty), optionally
/// after a DNS subdomain prefix and `/`.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        p.len() <= 253
            && p.split('.')
                .all(|part| part.len() <= 63 && is_dns1123_part(part))
    });
    prefix_ok && is_qualified_name_part(name)
}

fn is_qualified_name_part(s: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    s.len() <= 63
        && edge(s.chars().next())
        && edge(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Whether `s` is a DNS-1123 subdomain, the form of Secret names: dot-separated parts of
/// lowercase letters, digits and `-`, each starting and ending with a letter or digit, at most
/// 253 characters in all.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_part)
}

/// A Secret the workload will mount or pull with must have a name the API server accepts;
/// otherwise the Workspace would fail only after its GPU nodes were paid for.
pub(super) fn check_secret_name(name: &str, path: &str, errs: &mut FieldErrors) {
    if !is_dns1123_subdomain(name) {
        errs.push(
            path,
            format!(
                "invalid Secret name {name:?}: use lowercase letters, digits, '-' and '.', \
                 starting and ending with a letter or digit, at most 253 characters"
            ),
        );
    }
}

/// [`check_secret_name`] for each entry of a list at `path`.
pub(super) fn check_secret_names(names: &[String], path: &str, errs: &mut FieldErrors) {
    for (i, name) in names.iter().enumerate() {
        check_secret_name(name, &format!("{path}[{i}]"), errs);
    }
}

fn is_dns1123_part(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) && is_label_body(s)
}

pub(super) fn check_workspace_name(ws: &Workspace, errs: &mut FieldErrors) {
    let name = ws.metadata.name.as_deref().unwrap_or_default();
    if !is_dns1035_label(name) || name.len() > MAX_WORKSPACE_NAME_LEN {
        errs.push(
            "metadata.name",
            format!(
                "invalid Workspace name {name:?}: use lowercase letters, digits and '-', start \
                 with a letter, end with a letter or digit, and keep it to at most \
                 {MAX_WORKSPACE_NAME_LEN} characters so that derived names such as the Service \
                 '<name>-headless' and the StatefulSet pods' label '<name>-<revision hash>' \
                 stay valid"
            ),
        );
    }
}
