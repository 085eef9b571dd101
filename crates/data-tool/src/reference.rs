//! Image references (`[registry/]repository[:tag][@digest]`) and platforms (`os/arch`).

use std::fmt;

use crate::{Error, digest::is_sha256};

/// The registry a reference without a registry part points at.
pub const DOCKER_HUB: &str = "docker.io";

/// Where Docker Hub actually serves the registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host with optional port, e.g. `myregistry.azurecr.io` or `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path inside the registry, e.g. `adapters/phi-3`.
    pub repository: String,
    /// Tag, when given.
    pub tag: Option<String>,
    /// Manifest digest, when given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference the way container runtimes do: a first component with a dot, a
    /// colon or equal to `localhost` is a registry, otherwise the image is on Docker Hub.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::InvalidArgument(format!("image {text:?}: {why}"));
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) if is_sha256(digest) => (rest, Some(digest.to_owned())),
            Some(_) => return Err(invalid("the digest must be sha256:<64 hex digits>")),
            None => (text, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag.to_owned())),
            _ => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if is_registry(first) => (first.to_owned(), path.to_owned()),
            _ => (DOCKER_HUB.to_owned(), name.to_owned()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if !repository.split('/').all(is_path_component) {
            return Err(invalid(
                "repository path components must be lowercase letters and digits, \
                 separated by '.', '_' or '-'",
            ));
        }
        if tag.as_deref().is_some_and(|t| !is_tag(t)) {
            return Err(invalid(
                "a tag is at most 128 letters, digits, '_', '.' or '-'",
            ));
        }
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The digest if given, else the tag, else `latest`: what a manifest request names.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host the registry API is served on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn is_registry(component: &str) -> bool {
    component.contains(['.', ':']) || component == "localhost"
}

fn is_path_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    component.starts_with(alnum)
        && component.ends_with(alnum)
        && component
            .chars()
            .all(|c| alnum(c) || matches!(c, '.' | '_' | '-'))
}

fn is_tag(tag: &str) -> bool {
    tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An OS and CPU architecture, as OCI image indexes and configs name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v8`, `v7`, ... when it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: (*os).to_owned(),
                    architecture: (*arch).to_owned(),
                    variant: Some((*variant).to_owned()),
                })
            }
            _ => Err(Error::InvalidArgument(format!(
                "platform {text:?}: expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64"
            ))),
        }
    }

    /// Linux on the CPU this program runs on: the pusher runs on the node pool of the
    /// trainer, which is where the adapter will be used.
    pub fn current() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// Whether an index entry's platform is this one; a variant only counts when asked for.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        self.os == os
            && self.architecture == architecture
            && self.variant.as_deref().is_none_or(|v| Some(v) == variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ImageRef {
        ImageRef::parse(text).unwrap()
    }

    #[test]
    fn a_short_name_is_an_official_docker_hub_image() {
        let busybox = parse("busybox:latest");
        assert_eq!(busybox.registry, "docker.io");
        assert_eq!(busybox.repository, "library/busybox");
        assert_eq!(busybox.api_host(), "registry-1.docker.io");
        assert_eq!(busybox.to_string(), "docker.io/library/busybox:latest");
    }

    #[test]
    fn a_first_component_with_a_dot_or_port_is_the_registry() {
        let acr = parse("myregistry.azurecr.io/adapters/phi-3:0.0.1");
        assert_eq!(acr.registry, "myregistry.azurecr.io");
        assert_eq!(acr.repository, "adapters/phi-3");
        assert_eq!(acr.manifest_reference(), "0.0.1");
        let local = parse("127.0.0.1:5000/a/b");
        assert_eq!(
            (local.registry.as_str(), local.manifest_reference()),
            ("127.0.0.1:5000", "latest")
        );
        assert_eq!(parse("localhost/x:1").registry, "localhost");
        assert_eq!(parse("team/x:1").repository, "team/x");
    }

    #[test]
    fn a_digest_wins_over_the_tag() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned = parse(&format!("reg.io/x:1@{digest}"));
        assert_eq!(pinned.tag.as_deref(), Some("1"));
        assert_eq!(pinned.manifest_reference(), digest);
    }

    #[test]
    fn uppercase_repositories_and_bad_digests_are_refused() {
        assert!(ImageRef::parse("reg.io/Adapters/x:1").is_err());
        assert!(ImageRef::parse("reg.io/x@sha256:abc").is_err());
        assert!(ImageRef::parse("reg.io/x:bad/tag").is_err());
    }

    #[test]
    fn platforms_parse_and_match_with_an_optional_variant() {
        let arm = Platform::parse("linux/arm64").unwrap();
        assert!(arm.matches("linux", "arm64", Some("v8")));
        assert!(!arm.matches("linux", "amd64", None));
        let v7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(!v7.matches("linux", "arm", Some("v6")));
        assert_eq!(v7.to_string(), "linux/arm/v7");
        assert!(Platform::parse("linux").is_err());
    }
}
