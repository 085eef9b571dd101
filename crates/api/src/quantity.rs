//! Byte sizes as typed values, converted to and from Kubernetes quantities.

use std::fmt;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube_quantity::ParsedQuantity;

const KIB: u64 = 1024;
const MIB: u64 = KIB * 1024;
const GIB: u64 = MIB * 1024;

/// A size in bytes (memory or disk).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// A quantity string that is not a valid non-negative byte size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid size (expected a Kubernetes quantity such as 300Gi)")]
pub struct InvalidSize {
    /// The text that failed to parse.
    pub value: String,
}

impl ByteSize {
    /// A whole number of gibibytes.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n * GIB)
    }

    /// A fractional number of gibibytes, rounded up to a whole mebibyte.
    pub const fn gib_frac(n: f64) -> Self {
        let mib = n * 1024.0;
        let whole = mib as u64;
        let up = if (whole as f64) < mib {
            whole + 1
        } else {
            whole
        };
        ByteSize(up * MIB)
    }

    /// Parses a Kubernetes quantity (`300Gi`, `250G`, `0`) into bytes.
    pub fn parse(text: &str) -> Result<Self, InvalidSize> {
        let invalid = || InvalidSize {
            value: text.to_owned(),
        };
        let parsed = ParsedQuantity::try_from(text.trim()).map_err(|_| invalid())?;
        let bytes = parsed.to_bytes_u128().ok_or_else(invalid)?;
        u64::try_from(bytes).map(ByteSize).map_err(|_| invalid())
    }

    /// Parses a Kubernetes quantity value.
    pub fn from_quantity(q: &Quantity) -> Result<Self, InvalidSize> {
        Self::parse(&q.0)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Whole gibibytes, rounded up (`250G` is 233 GiB).
    pub const fn ceil_gib(self) -> u64 {
        self.0.div_ceil(GIB)
    }

    /// This size times `n`.
    pub const fn times(self, n: u64) -> Self {
        ByteSize(self.0.saturating_mul(n))
    }

    /// This size divided by `n` (rounded down); zero for `n == 0`.
    pub const fn divided_by(self, n: u64) -> Self {
        match n {
            0 => ByteSize(0),
            _ => ByteSize(self.0 / n),
        }
    }

    /// The size as a Kubernetes quantity in the largest binary unit that divides it exactly.
    pub fn to_quantity(self) -> Quantity {
        Quantity(self.to_string())
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b == 0 {
            write!(f, "0")
        } else if b.is_multiple_of(GIB) {
            write!(f, "{}Gi", b / GIB)
        } else if b.is_multiple_of(MIB) {
            write!(f, "{}Mi", b / MIB)
        } else if b.is_multiple_of(KIB) {
            write!(f, "{}Ki", b / KIB)
        } else {
            write!(f, "{b}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes_parse_to_bytes() {
        assert_eq!(ByteSize::parse("300Gi"), Ok(ByteSize::gib(300)));
        assert_eq!(
            ByteSize::parse("250G").map(|s| s.bytes()),
            Ok(250_000_000_000)
        );
        assert_eq!(ByteSize::parse("0"), Ok(ByteSize(0)));
        assert_eq!(ByteSize::parse("512Mi"), Ok(ByteSize(512 * MIB)));
    }

    #[test]
    fn decimal_gigabytes_round_up_to_whole_gibibytes() {
        assert_eq!(ByteSize::parse("250G").map(ByteSize::ceil_gib), Ok(233));
        assert_eq!(ByteSize::gib(300).ceil_gib(), 300);
        assert_eq!(ByteSize(1).ceil_gib(), 1);
    }

    #[test]
    fn garbage_and_negative_sizes_are_errors() {
        assert!(ByteSize::parse("lots").is_err());
        assert!(ByteSize::parse("-1Gi").is_err());
        assert!(ByteSize::parse("").is_err());
    }

    #[test]
    fn sizes_print_in_the_largest_exact_binary_unit() {
        assert_eq!(ByteSize::gib(50).to_string(), "50Gi");
        assert_eq!(ByteSize::gib_frac(16.5).to_string(), "16896Mi");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }
}
