//! The regional cores quota and what the VM size names tell: vCPUs and CPU architecture.

use axum::http::StatusCode;

use crate::{
    arm::error::ArmError,
    config::{CloudIds, Quota, QuotaCode},
};

/// The family letters, the vCPU figure and the feature letters of a size name:
/// `Standard_NC24ads_A100_v4` is (`NC`, 24, `ads`).
fn name_parts(vm_size: &str) -> Option<(&str, u32, &str)> {
    let (_, rest) = vm_size.split_once('_')?;
    let digits_at = rest.find(|c: char| c.is_ascii_digit())?;
    let (family, rest) = rest.split_at(digits_at);
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, rest) = rest.split_at(digits_end);
    let features = rest.split('_').next().unwrap_or_default();
    Some((family, digits.parse().ok()?, features))
}

/// vCPUs of a VM size: the configured figure, else the one in the name, else the default.
pub(crate) fn vcpus(quota: &Quota, vm_size: &str) -> u32 {
    let configured = quota
        .vcpus
        .iter()
        .find(|(size, _)| size.eq_ignore_ascii_case(vm_size));
    configured
        .map(|(_, vcpus)| *vcpus)
        .or_else(|| {
            name_parts(vm_size)
                .map(|(_, vcpus, _)| vcpus)
                .filter(|n| *n > 0)
        })
        .unwrap_or(quota.default_vcpus)
}

/// `arm64` for Ampere sizes (a `p` among the feature letters, e.g. `Standard_D4ps_v5`).
pub(crate) fn arch(vm_size: &str) -> &'static str {
    let arm = name_parts(vm_size).is_some_and(|(_, _, features)| {
        features
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .any(|c| c == 'p')
    });
    if arm { "arm64" } else { "amd64" }
}

/// What a create or scale-up needs against what is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Demand {
    pub usage: u64,
    pub requested: u64,
}

/// Refuses a demand that would exceed the limit, the way AKS reports it.
pub(crate) fn check(quota: &Quota, cloud: &CloudIds, demand: Demand) -> Result<(), ArmError> {
    let Some(limit) = quota.limit_cores else {
        return Ok(());
    };
    let Demand { usage, requested } = demand;
    if requested == 0 || usage + requested <= limit {
        return Ok(());
    }
    let needed = usage + requested;
    let location = &cloud.location;
    let details = format!(
        "Operation could not be completed: it would exceed the approved Total Regional Cores \
         quota. Additional details - Deployment Model: Resource Manager, Location: {location}, \
         Current Limit: {limit}, Current Usage: {usage}, Additional Required: {requested}, \
         (Minimum) New Limit Required: {needed}. Ask for a higher regional quota to continue."
    );
    Err(match quota.code {
        QuotaCode::QuotaExceeded => {
            let message = format!(
                "Preflight validation of the agent pool for container service {} in resource \
                 group {} failed. Message: {details}",
                cloud.cluster, cloud.node_resource_group
            );
            ArmError::new(StatusCode::BAD_REQUEST, "QuotaExceeded", message)
        }
        QuotaCode::OperationNotAllowed => {
            ArmError::new(StatusCode::CONFLICT, "OperationNotAllowed", details)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpus_are_read_from_the_size_name_unless_configured() {
        let mut quota = Quota::default();
        assert_eq!(vcpus(&quota, "Standard_NC24ads_A100_v4"), 24);
        assert_eq!(vcpus(&quota, "Standard_ND96isr_H100_v5"), 96);
        assert_eq!(vcpus(&quota, "Standard_E16-4ds_v5"), 16);
        assert_eq!(vcpus(&quota, "nonsense"), 8);
        quota.vcpus.insert("standard_d11".into(), 2);
        assert_eq!(vcpus(&quota, "Standard_D11"), 2);
    }

    #[test]
    fn ampere_sizes_are_arm64() {
        assert_eq!(arch("Standard_D4ps_v5"), "arm64");
        assert_eq!(arch("Standard_NC24ads_A100_v4"), "amd64");
        assert_eq!(arch("Standard_NP10s"), "amd64");
    }

    #[test]
    fn exceeding_the_quota_names_the_limit_and_the_request() {
        let quota = Quota {
            limit_cores: Some(0),
            ..Quota::default()
        };
        let cloud = CloudIds::default();
        let error = check(
            &quota,
            &cloud,
            Demand {
                usage: 0,
                requested: 24,
            },
        )
        .unwrap_err();
        assert_eq!(
            (error.status, error.body.code.as_str()),
            (StatusCode::BAD_REQUEST, "QuotaExceeded")
        );
        assert!(error.body.message.contains("Regional Cores quota"));
        assert!(error.body.message.contains("Current Limit: 0"));
        assert!(error.body.message.contains("Additional Required: 24"));

        let compute = Quota {
            code: QuotaCode::OperationNotAllowed,
            ..quota
        };
        let error = check(
            &compute,
            &cloud,
            Demand {
                usage: 0,
                requested: 24,
            },
        )
        .unwrap_err();
        assert_eq!(
            (error.status, error.body.code.as_str()),
            (StatusCode::CONFLICT, "OperationNotAllowed")
        );
    }

    #[test]
    fn a_demand_within_the_limit_passes() {
        let quota = Quota {
            limit_cores: Some(48),
            ..Quota::default()
        };
        assert!(
            check(
                &quota,
                &CloudIds::default(),
                Demand {
                    usage: 24,
                    requested: 24
                }
            )
            .is_ok()
        );
    }
}
