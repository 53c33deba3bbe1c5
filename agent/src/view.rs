//! The chassis view held by the agent (placeholder).
