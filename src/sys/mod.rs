//! POSIX calls std does not offer (directory descriptors, `*at` calls,
//! process groups), wrapped safely. With `ffi/`, the only place `unsafe`
//! is allowed; every block carries a `// SAFETY:` comment.

pub(crate) mod os;
