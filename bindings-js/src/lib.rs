//! WebAssembly glue for the tripwire npm package (being built).
#![forbid(unsafe_code)]
