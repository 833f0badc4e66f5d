//! Placeholder; replaced by the suite.
