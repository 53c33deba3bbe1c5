//! Desired vs installed flows (placeholder).
