//! `router`: Tributary's PostgreSQL-protocol front end and the `tributary`
//! binary's building blocks.

pub mod auth;
pub mod classify;
pub mod config;
pub mod conn;
pub mod core;
pub mod db;
pub mod debezium;
pub mod error;
pub mod exec;
pub mod handler;
pub mod keys;
pub mod params;
pub mod pgtypes;
pub mod policy;
pub mod session;
pub mod write_order;
