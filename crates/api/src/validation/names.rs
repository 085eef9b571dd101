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
