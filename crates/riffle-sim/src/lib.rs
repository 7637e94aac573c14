//! riffle-sim (see README in the crate docs below)
pub mod node;
pub mod sim;
pub mod wire;
