//! PyO3 glue for the tripwire Python package (being built).
