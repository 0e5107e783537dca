// The one source of the C ABI version: `include!`d by `src/meta.rs` (the
// crate's `meta::ABI_VERSION`, `meta.version`'s `abi_version`) and by
// `build.rs` (the SONAME `libhydra_core.so.N`, `HYDRA_ABI_VERSION` in the
// header); `scripts/install` and `scripts/bench` read the number from this
// line. Bump it when a C signature or the envelope changes.

/// The version of the C ABI: bumped when a C signature or the envelope changes.
pub const ABI_VERSION: u32 = 1;
