//! Random identifiers in the shapes Azure uses: GUIDs, eTags and VMSS names.

use rand::Rng;

/// A random (version 4) GUID, e.g. `3f2b8c1e-0a4d-4e6f-9b1a-2c3d4e5f6a7b`.
pub(crate) fn guid() -> String {
    let random: u128 = rand::rng().random();
    // Version 4 in bits 76..80, variant `10` in bits 62..64.
    let bits = (random & !(0xf << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A fresh eTag; AKS uses GUIDs.
pub(crate) fn etag() -> String {
    guid()
}

/// The VMSS of a pool, `aks-<pool>-<8 digits>-vmss`.
pub(crate) fn scale_set_name(pool: &str) -> String {
    let digits: u32 = rand::rng().random_range(10_000_000..100_000_000);
    format!("aks-{pool}-{digits}-vmss")
}

/// `n` in base 36, zero-padded to six characters, as in VMSS computer names.
pub(crate) fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut text = [b'0'; 6];
    for slot in text.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_have_the_8_4_4_4_12_shape() {
        let id = guid();
        let lengths: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lengths, [8, 4, 4, 4, 12]);
        assert_eq!(&id[14..15], "4");
        assert!(["8", "9", "a", "b"].contains(&&id[19..20]), "{id}");
    }

    #[test]
    fn instance_suffixes_count_in_base_36() {
        assert_eq!(base36(0), "000000");
        assert_eq!(base36(35), "00000z");
        assert_eq!(base36(36), "000010");
    }

    #[test]
    fn scale_sets_carry_the_pool_and_eight_digits() {
        let name = scale_set_name("ws1a2b3c4d5");
        let digits = name
            .trim_start_matches("aks-ws1a2b3c4d5-")
            .trim_end_matches("-vmss");
        assert_eq!(digits.len(), 8);
        assert!(digits.chars().all(|c| c.is_ascii_digit()));
    }
}
