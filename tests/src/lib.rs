//! End-to-end suites of the Exchange federation: a real catalog and real nodes started as
//! separate processes on loopback (see `exchange_client_sdk::localnet`), driven through the
//! SDK and the `exchange` command line. The suites are in `tests/`.
