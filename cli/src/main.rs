//! `tripwire simulate | validate | schema` (being built).
fn main() {}
