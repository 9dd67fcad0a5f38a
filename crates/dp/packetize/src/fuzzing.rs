//! Fuzz entry points (to be written).
