//! IANA cipher suite names, so that every backend reports the same name for the same id.

/// The IANA name for the suites browsers and these three servers negotiate.
pub(crate) fn cipher_suite_name(id: u16) -> Option<&'static str> {
    Some(match id {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0xC02B => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xC02C => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xC02F => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xC030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xCCA8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xCCA9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xC009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xC00A => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xC023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xC024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xC0AC => "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
        0xC0AD => "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
        _ => return None,
    })
}

/// Normalises a library's version string (`TLSv1.3`, `TLSv1_3`) to `1.2`/`1.3`.
pub(crate) fn normalise_version(s: &str) -> String {
    match s {
        "TLSv1.2" | "TLSv1_2" => "1.2".into(),
        "TLSv1.3" | "TLSv1_3" => "1.3".into(),
        other => other.to_owned(),
    }
}
