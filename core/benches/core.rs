//! Core benchmarks (criterion). Filled in as policies land.
fn main() {}
