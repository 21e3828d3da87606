//! Compiles the Mbed TLS 3.6 shim and links the library statically from the prefix that
//! `scripts/setup.sh` fills (`.deps/mbedtls`), or from `MBEDTLS_PREFIX`.
//! Also records the locked rustls version, which rustls cannot report at run time.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=csrc/mbedtls_shim.c");
    println!("cargo:rerun-if-env-changed=MBEDTLS_PREFIX");
    println!("cargo::rustc-check-cfg=cfg(hm_mbedtls_missing)");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let prefix = std::env::var_os("MBEDTLS_PREFIX")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../.deps/mbedtls"));
    let build_info = prefix.join("include/mbedtls/build_info.h");
    println!("cargo:rerun-if-changed={}", build_info.display());
    let header = std::fs::read_to_string(&build_info).unwrap_or_default();
    let version = header
        .lines()
        .find_map(|l| l.strip_prefix("#define MBEDTLS_VERSION_STRING "))
        .map(|v| v.trim().trim_matches('"').to_owned());
    match version.as_deref() {
        Some(v) if v.starts_with("3.6.") => link_mbedtls(&prefix),
        found => {
            // Build without it: the other backends still work, and every Mbed TLS cell says
            // why it could not run, instead of the whole build failing.
            let reason = format!(
                "built without Mbed TLS: 3.6.x not found in {} (found: {}); run `sudo scripts/setup.sh` and rebuild",
                prefix.display(),
                found.unwrap_or("nothing")
            );
            println!("cargo:warning={reason}");
            println!("cargo:rustc-cfg=hm_mbedtls_missing");
            println!("cargo:rustc-env=HM_MBEDTLS_MISSING={reason}");
        }
    }

    let lock = std::fs::read_to_string(manifest.join("../Cargo.lock")).unwrap_or_default();
    println!("cargo:rerun-if-changed=../Cargo.lock");
    let rustls = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"rustls\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_owned())
        .unwrap_or_else(|| "(version unknown)".into());
    println!("cargo:rustc-env=HM_RUSTLS_VERSION={rustls}");
}

fn link_mbedtls(prefix: &Path) {
    cc::Build::new()
        .file("csrc/mbedtls_shim.c")
        .include(prefix.join("include"))
        .warnings(true)
        .compile("hm_mbedtls_shim");
    println!(
        "cargo:rustc-link-search=native={}",
        prefix.join("lib").display()
    );
    for lib in ["mbedtls", "mbedx509", "mbedcrypto"] {
        println!("cargo:rustc-link-lib=static={lib}");
    }
    println!("cargo:rustc-link-lib=pthread");
}
