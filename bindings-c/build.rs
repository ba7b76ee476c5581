//! Generates `include/tripwire.h` from the crate's `extern "C"` surface with cbindgen.
//! The header is committed; CI rebuilds it and fails when `git diff` shows it changed.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml"))
        .expect("bindings-c/cbindgen.toml is readable and valid");
    match cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
    {
        Ok(bindings) => {
            // Rewrites the file only when its content changes, so an up-to-date header keeps
            // its mtime and `git diff` stays quiet.
            bindings.write_to_file(format!("{dir}/include/tripwire.h"));
        }
        Err(e) => panic!("cbindgen could not generate include/tripwire.h: {e}"),
    }
    // A versioned soname, so that an installed libtripwire.so.0 can be upgraded in place.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtripwire.so.{major}");
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
}
