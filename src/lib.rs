//! Joule.
