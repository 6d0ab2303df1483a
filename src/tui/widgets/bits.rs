//! The live bit layout of the DS byte (being written).
