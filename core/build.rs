//! Embeds the store scripts (`scripts/*.lua`) with their SHA1, so hosts can `EVALSHA` them
//! and `SCRIPT LOAD` them at start without hashing anything themselves.

use std::{env, fs, path::Path};

const SCRIPTS: &[(&str, &str)] = &[("GCRA", "gcra"), ("BREAKER", "breaker")];

fn main() {
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("scripts.rs");
    let mut code = String::new();
    for (ident, name) in SCRIPTS {
        let path = format!("scripts/{name}.lua");
        println!("cargo:rerun-if-changed={path}");
        let source = fs::read_to_string(&path).expect("a store script is missing");
        let sha1 = sha1_smol::Sha1::from(source.as_bytes())
            .digest()
            .to_string();
        code.push_str(&format!(
            "/// The `{name}` script.\npub const {ident}: Script = Script {{ name: {name:?}, \
             source: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/{path}\")), sha1: {sha1:?} }};\n"
        ));
    }
    let list: Vec<String> = SCRIPTS.iter().map(|(i, _)| format!("&{i}")).collect();
    code.push_str(&format!(
        "/// Every store script.\nconst ALL: &[&Script] = &[{}];\n",
        list.join(", ")
    ));
    fs::write(out, code).expect("OUT_DIR is writable");
}
