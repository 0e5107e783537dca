//! Bundles: a profile's records exported to one verifiable file and
//! imported back (`spec/OPERATIONS.md` §8).

pub mod format;
