//! The physical model.
