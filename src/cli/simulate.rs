//! `vitalflow simulate --brokers ... --topic vitals`.

use std::time::Duration;

use super::args::SimulateArgs;
use super::signal::shutdown_on_signal;
use crate::common::{EnvString, HumanDuration};
use crate::kafka::{ClientSettings, TopicSettings};
use crate::sources::simulator::{Pacing, SimulatorConfig};
use crate::sources::simulator::{PublishOptions, publish_readings};

pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let interval = match args.rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => {
            Duration::from_secs_f64(f64::from(args.patients) / rate)
        }
        Some(rate) => {
            anyhow::bail!("--rate must be a positive number of messages per second, got {rate}")
        }
        None => args.interval,
    };
    // Faster than real time, the readings' clock runs ahead of the wall
    // clock, and pipelines refuse readings from the future (`max_future` in
    // the shipped ones): a known number of readings is backdated so that
    // the last one is taken now.
    let faster_than_real_time = args.unpaced || args.rate.is_some();
    let start = match args.count {
        Some(count) if faster_than_real_time => {
            let per_patient = count.div_ceil(u64::from(args.patients.max(1)));
            let span = interval.saturating_mul(u32::try_from(per_patient).unwrap_or(u32::MAX));
            let start = chrono::Utc::now()
                - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::zero());
            Some(start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        }
        _ => None,
    };
    let simulator = SimulatorConfig {
        patients: args.patients,
        start,
        interval: HumanDuration(interval),
        seed: args.seed,
        pacing: if args.unpaced {
            Pacing::Unpaced
        } else {
            Pacing::Realtime
        },
        limit: args.count,
        ..Default::default()
    };
    simulator.validate().map_err(anyhow::Error::msg)?;
    let client = ClientSettings {
        brokers: EnvString(args.brokers.clone()),
        properties: args
            .properties
            .into_iter()
            .map(|(k, v)| (k, EnvString(v)))
            .collect(),
    };
    client.validate().map_err(anyhow::Error::msg)?;
    let create_topic = (!args.no_create_topic).then(|| TopicSettings {
        partitions: args.partitions,
        retention: HumanDuration(args.retention),
        ..Default::default()
    });
    if let Some(create) = &create_topic {
        create.validate().map_err(anyhow::Error::msg)?;
    }
    tracing::info!(
        brokers = %args.brokers,
        topic = %args.topic,
        patients = args.patients,
        messages_per_second = if args.unpaced { f64::INFINITY } else { f64::from(args.patients) / interval.as_secs_f64() },
        "publishing simulated readings"
    );
    let options = PublishOptions {
        client,
        topic: args.topic.clone(),
        create_topic,
        flush_timeout: Duration::from_secs(60),
        format: args.format,
    };
    let summary = publish_readings(simulator, options, shutdown_on_signal()).await?;
    let secs = summary.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "simulate: {} messages produced, {} delivered, {} failed to `{}` in {:.1}s ({:.0} messages/s)",
        summary.produced,
        summary.delivered,
        summary.failed,
        args.topic,
        secs,
        summary.produced as f64 / secs
    );
    if summary.failed > 0 {
        anyhow::bail!("{} messages could not be delivered", summary.failed);
    }
    Ok(())
}
