#![doc = include_str!("../README.md")]

mod brightdata;
mod config;
mod decodo;
mod error;
mod gateway;
mod iproyal;
mod netnut;
mod oxylabs;
mod session;
mod soax;
mod targeting;
mod template;

pub use brightdata::{BrightData, BrightDataOptions};
pub use config::{ProviderConfig, ProviderKind};
pub use decodo::{Decodo, DecodoOptions};
pub use error::ProviderError;
pub use gateway::Gateway;
pub use iproyal::{IpRoyal, IpRoyalOptions};
pub use netnut::{NetNut, NetNutOptions, NetNutPool};
pub use oxylabs::{Oxylabs, OxylabsOptions};
pub use session::{
    CredentialSide, DEFAULT_SESSION_ID_MAX_LEN, GENERATED_SESSION_ID_LEN, SessionPlacement,
    SessionRule,
};
pub use soax::{Soax, SoaxOptions};
pub use template::{Placeholder, Template, TemplateOptions};
