//! Hostile input: HealthCheck specs, targets and files written to crash, blind, exhaust or
//! steal through Canary. Each case here reproduces an attack that worked before the
//! hardening and asserts it is now refused with a clear, field-naming error.

mod budget;
mod cel;
mod cel_memory;
mod cli;
mod deny;
mod json;
mod oauth2;
mod redirects;
mod specs;
mod tenants;
mod words;
mod words_cli;
