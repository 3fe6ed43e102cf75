//! The integration tests: one test binary, organised by domain (`store`, ...), with the shared
//! fixtures under `support`.

mod store;
mod support;
