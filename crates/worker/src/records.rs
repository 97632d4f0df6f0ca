//! What a decided request leaves for analytics, sent after the response: each exposure
//! and conversion (`micromoment::record`) to Analytics Engine when `EXPOSURES` is bound (the
//! layout of docs/analytics.md), else as one JSON log line, the line
//! `micromoment analyze` reads. In development every record is also logged.

use worker::{AnalyticsEngineDataPointBuilder, Env};

use super::cache::Active;
use super::platform::{self, Background};
use micromoment::record::{self, Event};

/// Sends the records of `decision` (and of the request's `events` that goals name).
pub(crate) fn send(
    env: &Env,
    bg: &impl Background,
    active: &Active,
    decision: &micromoment::Decision<'_>,
    context: &micromoment::Context,
    events: &[Event<'_>],
) {
    let records = record::records(&active.bundle, decision, context, events);
    if records.is_empty() {
        return;
    }
    let written: Vec<(String, record::DataPoint)> = records
        .iter()
        .filter_map(|r| {
            let line = r.line().ok()?;
            Some((line, r.data_point(&active.hash)))
        })
        .collect();
    let dataset = env.analytics_engine("EXPOSURES").ok();
    // In development the dataset is a local stub: mirror every record to the log.
    let mirror = platform::dev(env);
    bg.run(Box::pin(async move {
        for (line, point) in written {
            if mirror {
                platform::print(&line);
            }
            let sent = dataset.as_ref().is_some_and(|ds| {
                AnalyticsEngineDataPointBuilder::new()
                    .indexes([point.index.as_str()])
                    .blobs(point.blobs)
                    .doubles(point.doubles)
                    .write_to(ds)
                    .is_ok()
            });
            if !sent && !mirror {
                platform::print(&line);
            }
        }
    }));
}
