//! C API for tripwire (being built).
