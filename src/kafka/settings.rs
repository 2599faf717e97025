//! Connection settings shared by the Kafka source, the Kafka sink and
//! `vitalflow simulate`.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use super::ConfigError;
use crate::common::EnvString;

/// `brokers:` and pass-through `properties:` (components embed the two keys
/// themselves: serde's `flatten` would defeat `deny_unknown_fields`).
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Comma-separated `host:port` list; `${KAFKA_BROKERS:-localhost:9092}`
    /// style references are expanded.
    pub brokers: EnvString,
    /// librdkafka properties passed through unchanged (TLS, SASL, tuning),
    /// e.g. `security.protocol: SASL_SSL`. They override vitalflow's own.
    pub properties: BTreeMap<String, EnvString>,
}

impl ClientSettings {
    pub fn new(brokers: &str) -> Self {
        Self {
            brokers: EnvString(brokers.to_string()),
            properties: BTreeMap::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let brokers = self.brokers.as_str().trim();
        if brokers.is_empty() {
            return Err(ConfigError::NoBrokers);
        }
        for broker in brokers.split(',') {
            let broker = broker.trim();
            let port_ok = broker
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                return Err(ConfigError::BadBroker {
                    broker: broker.to_string(),
                });
            }
        }
        for key in self.properties.keys() {
            if key == "bootstrap.servers" {
                return Err(ConfigError::ReservedProperty(
                    "set the brokers with `brokers`, not `properties.bootstrap.servers`".into(),
                ));
            }
        }
        Ok(())
    }

    /// A librdkafka configuration: `defaults` first, then the user's
    /// properties on top.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.brokers.as_str());
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value.as_str());
        }
        config
    }
}
