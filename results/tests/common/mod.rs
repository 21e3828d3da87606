//! What the results crate's tests share.

pub(crate) use model::testing::record;
