//! Identifier newtypes: a market ticker is not a series ticker is not an order id.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A market ticker, e.g. `KXBTC15M-26SEP071915-15`.
    MarketTicker
);
id_type!(
    /// A series ticker, e.g. `KXBTC15M`.
    SeriesTicker
);
id_type!(
    /// An exchange-assigned order id.
    OrderId
);
id_type!(
    /// Our idempotency key for an order, recorded before the order is sent.
    ClientOrderId
);

impl MarketTicker {
    /// The series prefix (text before the first `-`).
    pub fn series(&self) -> SeriesTicker {
        SeriesTicker(self.0.split('-').next().unwrap_or("").to_string())
    }
}
