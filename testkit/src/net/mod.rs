//! The fake proxy network on loopback: gateway, judges and target site.
