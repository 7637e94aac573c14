//! riffle-proto
