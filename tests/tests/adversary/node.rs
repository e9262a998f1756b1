//! Attacks on a department node: see the suite's documentation in `main.rs`.
