//! GPU instance types per cloud: one table each, looked up case-insensitively.

use std::{fmt, str::FromStr};

use crate::quantity::ByteSize;

/// Cloud whose instance types a deployment uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// Microsoft Azure (AKS).
    #[default]
    Azure,
    /// Amazon Web Services (EKS).
    Aws,
}

impl Cloud {
    /// The catalog of this cloud.
    pub fn catalog(self) -> &'static [SkuRow] {
        match self {
            Cloud::Azure => AZURE,
            Cloud::Aws => AWS,
        }
    }

    /// The spelling an instance type is stored under: the catalog's when it knows the type
    /// (whatever the case), otherwise the name without surrounding spaces.
    pub fn canonical_instance_type(self, name: &str) -> String {
        self.sku(name)
            .map_or_else(|| name.trim().to_owned(), |sku| sku.name.to_owned())
    }

    /// Looks an instance type up, ignoring case.
    pub fn sku(self, name: &str) -> Option<Sku> {
        self.catalog().iter().find_map(|row| {
            let canonical = row
                .names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(name.trim()))?;
            Some(Sku {
                name: canonical,
                row,
            })
        })
    }

    /// Every instance type name of this cloud, comma-separated, for error messages.
    pub fn supported_list(self) -> String {
        let names: Vec<&str> = self
            .catalog()
            .iter()
            .flat_map(|r| r.names.iter().copied())
            .collect();
        names.join(", ")
    }

    /// The name used in flags and environment (`azure`, `aws`).
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Azure => "azure",
            Cloud::Aws => "aws",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cloud name that is neither azure nor aws.
#[derive(Debug, thiserror::Error)]
#[error("unknown cloud provider {0:?}: expected azure or aws")]
pub struct UnknownCloud(String);

impl FromStr for Cloud {
    type Err = UnknownCloud;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "azure" => Ok(Cloud::Azure),
            "aws" => Ok(Cloud::Aws),
            _ => Err(UnknownCloud(s.to_owned())),
        }
    }
}

/// Maker of the accelerators of an instance type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// NVIDIA GPUs, exposed as `nvidia.com/gpu`.
    Nvidia,
    /// AMD GPUs (no `nvidia.com/gpu`; cannot run the NVIDIA preset images).
    Amd,
    /// AWS Trainium or Inferentia chips (exposed as `aws.amazon.com/neuron`).
    AwsNeuron,
}

/// One row of a catalog: names of the same machine and its accelerators.
#[derive(Debug, PartialEq)]
pub struct SkuRow {
    /// Canonical spellings; the first is the cloud's own name, the rest aliases.
    pub names: &'static [&'static str],
    /// Accelerators per machine.
    pub gpu_count: u32,
    /// Total accelerator memory of the machine, as KAITO counts it.
    pub total_memory: ByteSize,
    /// Accelerator model.
    pub gpu_model: &'static str,
    /// Accelerator maker.
    pub vendor: Vendor,
}

/// A catalog entry found by name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sku {
    /// The name as the catalog spells it.
    pub name: &'static str,
    /// The row it belongs to.
    pub row: &'static SkuRow,
}

impl Sku {
    /// Accelerators per machine.
    pub fn gpu_count(&self) -> u32 {
        self.row.gpu_count
    }

    /// Total accelerator memory of the machine.
    pub fn total_memory(&self) -> ByteSize {
        self.row.total_memory
    }

    /// Memory of one accelerator.
    pub fn per_gpu_memory(&self) -> ByteSize {
        self.row
            .total_memory
            .divided_by(u64::from(self.row.gpu_count))
    }

    /// Whether the machine exposes `nvidia.com/gpu`.
    pub fn is_nvidia(&self) -> bool {
        self.row.vendor == Vendor::Nvidia
    }
}

/// Whether two instance type names mean the same size: equal but for case and surrounding
/// spaces, as a node's `node.kubernetes.io/instance-type` label is matched against a spec.
pub fn same_instance_type(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

const fn row(
    names: &'static [&'static str],
    gpu_count: u32,
    total_gib: u64,
    gpu_model: &'static str,
    vendor: Vendor,
) -> SkuRow {
    SkuRow {
        names,
        gpu_count,
        total_memory: ByteSize::gib(total_gib),
        gpu_model,
        vendor,
    }
}

use Vendor::{Amd, AwsNeuron, Nvidia};

/// Azure GPU virtual machine sizes.
pub static AZURE: &[SkuRow] = &[
    row(&["Standard_NC6"], 1, 12, "NVIDIA K80", Nvidia),
    row(&["Standard_NC12"], 2, 24, "NVIDIA K80", Nvidia),
    row(
        &["Standard_NC24", "Standard_NC24r"],
        4,
        48,
        "NVIDIA K80",
        Nvidia,
    ),
    row(&["Standard_NC6s_v2"], 1, 16, "NVIDIA P100", Nvidia),
    row(&["Standard_NC12s_v2"], 2, 32, "NVIDIA P100", Nvidia),
    row(
        &["Standard_NC24s_v2", "Standard_NC24rs_v2"],
        4,
        64,
        "NVIDIA P100",
        Nvidia,
    ),
    row(&["Standard_ND6s"], 1, 24, "NVIDIA P40", Nvidia),
    row(&["Standard_ND12s"], 2, 48, "NVIDIA P40", Nvidia),
    row(
        &["Standard_ND24s", "Standard_ND24rs"],
        4,
        96,
        "NVIDIA P40",
        Nvidia,
    ),
    row(&["Standard_NV6"], 1, 8, "NVIDIA M60", Nvidia),
    row(&["Standard_NV12"], 2, 16, "NVIDIA M60", Nvidia),
    row(&["Standard_NV24"], 4, 32, "NVIDIA M60", Nvidia),
    row(&["Standard_NV12s_v3"], 1, 8, "NVIDIA M60", Nvidia),
    row(&["Standard_NV24s_v3"], 2, 16, "NVIDIA M60", Nvidia),
    row(&["Standard_NV48s_v3"], 4, 32, "NVIDIA M60", Nvidia),
    row(&["Standard_NC6s_v3"], 1, 16, "NVIDIA V100", Nvidia),
    row(&["Standard_NC12s_v3"], 2, 32, "NVIDIA V100", Nvidia),
    row(
        &["Standard_NC24s_v3", "Standard_NC24rs_v3"],
        4,
        64,
        "NVIDIA V100",
        Nvidia,
    ),
    row(&["Standard_ND40rs_v2"], 8, 256, "NVIDIA V100 32 GB", Nvidia),
    row(
        &[
            "Standard_NC4as_T4_v3",
            "Standard_NC8as_T4_v3",
            "Standard_NC16as_T4_v3",
        ],
        1,
        16,
        "NVIDIA T4",
        Nvidia,
    ),
    row(&["Standard_NC64as_T4_v3"], 4, 64, "NVIDIA T4", Nvidia),
    row(
        &["Standard_NV6ads_A10_v5"],
        1,
        4,
        "NVIDIA A10 (1/6 partition)",
        Nvidia,
    ),
    row(
        &["Standard_NV12ads_A10_v5"],
        1,
        8,
        "NVIDIA A10 (1/3 partition)",
        Nvidia,
    ),
    row(
        &["Standard_NV18ads_A10_v5"],
        1,
        12,
        "NVIDIA A10 (1/2 partition)",
        Nvidia,
    ),
    row(
        &["Standard_NV36ads_A10_v5", "Standard_NV36adms_A10_v5"],
        1,
        24,
        "NVIDIA A10",
        Nvidia,
    ),
    row(&["Standard_NV72ads_A10_v5"], 2, 48, "NVIDIA A10", Nvidia),
    row(
        &["Standard_NC24ads_A100_v4"],
        1,
        80,
        "NVIDIA A100 80 GB",
        Nvidia,
    ),
    row(
        &["Standard_NC48ads_A100_v4"],
        2,
        160,
        "NVIDIA A100 80 GB",
        Nvidia,
    ),
    row(
        &["Standard_NC96ads_A100_v4"],
        4,
        320,
        "NVIDIA A100 80 GB",
        Nvidia,
    ),
    row(
        &["Standard_ND96asr_v4", "Standard_ND96asr_A100_v4"],
        8,
        320,
        "NVIDIA A100 40 GB",
        Nvidia,
    ),
    row(
        &["Standard_ND96amsr_A100_v4"],
        8,
        640,
        "NVIDIA A100 80 GB",
        Nvidia,
    ),
    row(
        &["Standard_NC40ads_H100_v5"],
        1,
        94,
        "NVIDIA H100 NVL",
        Nvidia,
    ),
    row(
        &["Standard_NC80adis_H100_v5"],
        2,
        188,
        "NVIDIA H100 NVL",
        Nvidia,
    ),
    row(
        &["Standard_NCC40ads_H100_v5"],
        1,
        94,
        "NVIDIA H100 (confidential)",
        Nvidia,
    ),
    row(
        &["Standard_ND96isr_H100_v5"],
        8,
        640,
        "NVIDIA H100 80 GB",
        Nvidia,
    ),
    row(
        &["Standard_ND96isr_H200_v5"],
        8,
        1128,
        "NVIDIA H200 141 GB",
        Nvidia,
    ),
    row(
        &["Standard_NG32ads_V620_v1", "Standard_NG32adms_V620_v1"],
        1,
        32,
        "AMD Radeon PRO V620",
        Amd,
    ),
    row(
        &["Standard_NV32as_v4"],
        1,
        16,
        "AMD Radeon Instinct MI25",
        Amd,
    ),
];

/// AWS GPU and accelerator instance types.
pub static AWS: &[SkuRow] = &[
    row(&["p2.xlarge"], 1, 12, "NVIDIA K80", Nvidia),
    row(&["p2.8xlarge"], 8, 96, "NVIDIA K80", Nvidia),
    row(&["p2.16xlarge"], 16, 192, "NVIDIA K80", Nvidia),
    row(&["p3.2xlarge"], 1, 16, "NVIDIA V100", Nvidia),
    row(&["p3.8xlarge"], 4, 64, "NVIDIA V100", Nvidia),
    row(&["p3.16xlarge"], 8, 128, "NVIDIA V100", Nvidia),
    row(&["p3dn.24xlarge"], 8, 256, "NVIDIA V100 32 GB", Nvidia),
    row(&["p4d.24xlarge"], 8, 320, "NVIDIA A100 40 GB", Nvidia),
    row(&["p4de.24xlarge"], 8, 640, "NVIDIA A100 80 GB", Nvidia),
    row(&["p5.48xlarge"], 8, 640, "NVIDIA H100", Nvidia),
    row(
        &["p5e.48xlarge", "p5en.48xlarge"],
        8,
        1128,
        "NVIDIA H200",
        Nvidia,
    ),
    row(
        &[
            "g6.xlarge",
            "g6.2xlarge",
            "g6.4xlarge",
            "g6.8xlarge",
            "g6.16xlarge",
            "gr6.4xlarge",
            "gr6.8xlarge",
        ],
        1,
        24,
        "NVIDIA L4",
        Nvidia,
    ),
    row(&["g6.12xlarge", "g6.24xlarge"], 4, 96, "NVIDIA L4", Nvidia),
    row(&["g6.48xlarge"], 8, 192, "NVIDIA L4", Nvidia),
    row(
        &[
            "g5.xlarge",
            "g5.2xlarge",
            "g5.4xlarge",
            "g5.8xlarge",
            "g5.16xlarge",
        ],
        1,
        24,
        "NVIDIA A10G",
        Nvidia,
    ),
    row(
        &["g5.12xlarge", "g5.24xlarge"],
        4,
        96,
        "NVIDIA A10G",
        Nvidia,
    ),
    row(&["g5.48xlarge"], 8, 192, "NVIDIA A10G", Nvidia),
    row(
        &["g5g.xlarge", "g5g.2xlarge", "g5g.4xlarge", "g5g.8xlarge"],
        1,
        16,
        "NVIDIA T4G",
        Nvidia,
    ),
    row(&["g5g.16xlarge", "g5g.metal"], 2, 32, "NVIDIA T4G", Nvidia),
    row(
        &[
            "g4dn.xlarge",
            "g4dn.2xlarge",
            "g4dn.4xlarge",
            "g4dn.8xlarge",
            "g4dn.16xlarge",
        ],
        1,
        16,
        "NVIDIA T4",
        Nvidia,
    ),
    row(&["g4dn.12xlarge"], 4, 64, "NVIDIA T4", Nvidia),
    row(&["g4dn.metal"], 8, 128, "NVIDIA T4", Nvidia),
    row(
        &["g3s.xlarge", "g3.4xlarge", "g3s.4xlarge"],
        1,
        8,
        "NVIDIA M60",
        Nvidia,
    ),
    row(&["g3.8xlarge", "g3s.8xlarge"], 2, 16, "NVIDIA M60", Nvidia),
    row(
        &["g3.16xlarge", "g3s.16xlarge"],
        4,
        32,
        "NVIDIA M60",
        Nvidia,
    ),
    row(
        &["g4ad.xlarge", "g4ad.2xlarge", "g4ad.4xlarge"],
        1,
        8,
        "AMD Radeon Pro V520",
        Amd,
    ),
    row(&["g4ad.8xlarge"], 2, 16, "AMD Radeon Pro V520", Amd),
    row(&["g4ad.16xlarge"], 4, 32, "AMD Radeon Pro V520", Amd),
    row(&["trn1.2xlarge"], 1, 32, "AWS Trainium", AwsNeuron),
    row(
        &["trn1.32xlarge", "trn1n.32xlarge"],
        16,
        512,
        "AWS Trainium",
        AwsNeuron,
    ),
    row(
        &["inf2.xlarge", "inf2.8xlarge"],
        1,
        32,
        "AWS Inferentia2",
        AwsNeuron,
    ),
    row(&["inf2.24xlarge"], 6, 192, "AWS Inferentia2", AwsNeuron),
    row(&["inf2.48xlarge"], 12, 384, "AWS Inferentia2", AwsNeuron),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_return_the_canonical_spelling() {
        let sku = Cloud::Azure.sku("standard_nc6s_v3").expect("known sku");
        assert_eq!(sku.name, "Standard_NC6s_v3");
        assert_eq!(sku.gpu_count(), 1);
        assert_eq!(sku.total_memory(), ByteSize::gib(16));
        assert!(Cloud::Azure.sku("Standard_Q1_v1").is_none());
    }

    #[test]
    fn aliases_share_their_row() {
        let a = Cloud::Azure.sku("Standard_ND96asr_v4").expect("known");
        let b = Cloud::Azure.sku("Standard_ND96asr_A100_v4").expect("known");
        assert_eq!(a.row, b.row);
        assert_eq!(b.per_gpu_memory(), ByteSize::gib(40));
    }

    #[test]
    fn each_cloud_has_its_own_table() {
        assert!(
            Cloud::Aws
                .sku("g5.12xlarge")
                .is_some_and(|s| s.gpu_count() == 4)
        );
        assert!(Cloud::Azure.sku("g5.12xlarge").is_none());
        assert!(
            Cloud::Aws
                .sku("inf2.xlarge")
                .is_some_and(|s| !s.is_nvidia())
        );
    }

    #[test]
    fn no_name_appears_twice_in_a_cloud() {
        for cloud in [Cloud::Azure, Cloud::Aws] {
            let mut names: Vec<String> = cloud
                .catalog()
                .iter()
                .flat_map(|r| r.names.iter().map(|n| n.to_ascii_lowercase()))
                .collect();
            let total = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), total, "{cloud} has a duplicate name");
        }
    }

    #[test]
    fn the_supported_list_is_comma_separated() {
        let list = Cloud::Azure.supported_list();
        assert!(list.starts_with("Standard_NC6, Standard_NC12, "));
        assert!(list.contains("Standard_NC24ads_A100_v4"));
    }
}
