//! Attacks on the catalog and the central log: see the suite's documentation in `main.rs`.
