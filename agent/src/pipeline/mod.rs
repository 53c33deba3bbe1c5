//! The pipeline compiler (placeholder).
