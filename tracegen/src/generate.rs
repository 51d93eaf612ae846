//! Generators (to come).
