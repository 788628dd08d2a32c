//! nodetune built with the `gpu` feature: the very same main as agent/src/main.rs.
include!("../../../agent/src/main.rs");
