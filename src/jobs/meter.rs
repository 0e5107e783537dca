//! [`ProgressMeter`]: the one way a built-in job reports progress of a long
//! phase (issue 13: "at least every 1% or 250 ms, with an ETA once
//! measurable").
//!
//! The work calls [`ProgressMeter::advance`] as often as it likes (per row,
//! per line, per batch); the meter writes to the ledger only when 1% more
//! of the phase is done or [`REPORT_INTERVAL`] passed since its last report,
//! so a million-row phase costs about a hundred ledger writes, never one per
//! row. The ETA is the remaining work at the rate measured since the phase
//! started; it is `null` until something was done (no rate yet).
//!
//! A job that holds a read snapshot, or the writer itself, must not wait
//! for the writer (lock order, see `db`): its meter reports through
//! [`JobContext::progress_queued`] ([`Channel::Queued`]). Either way a
//! report is seen at once by `jobs.get`, `jobs.list` and `job.updated`
//! (the live overlay, `jobs::live`), whether or not the ledger has it yet.

use super::context::JobContext;
use super::ledger::ProgressPatch;
use crate::error::Result;
use crate::types::Patch;
use std::time::{Duration, Instant};

/// The longest a phase goes without a report while it advances.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(250);

/// How a meter's reports reach the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// [`JobContext::progress`]: waits for the writer.
    Direct,
    /// [`JobContext::progress_queued`]: never waits (inside a snapshot or
    /// a write transaction).
    Queued,
    /// Live at once (every reader sees each report), and in the ledger at
    /// most every [`REPORT_INTERVAL`]: a report [`Channel::Direct`] when
    /// that long passed since the last one, else `JobContext::report_live`
    /// (persisted with the next ledger write). For a job that reports after
    /// every short step (the embed job's batches).
    Live,
}

/// When to report and what: the decisions of a [`ProgressMeter`], apart
/// from the job so they can be checked with any clock.
#[derive(Debug, Clone)]
pub(crate) struct Cadence {
    total: u64,
    done: u64,
    /// Report once `done` reaches this (1% after the last report).
    next_at: u64,
    started: Instant,
    last_report: Instant,
}

impl Cadence {
    pub fn new(total: u64, now: Instant) -> Cadence {
        let mut cadence = Cadence {
            total,
            done: 0,
            next_at: 0,
            started: now,
            last_report: now,
        };
        cadence.next_at = cadence.step();
        cadence
    }

    /// 1% of the total (at least one step).
    fn step(&self) -> u64 {
        (self.total / 100).max(1)
    }

    /// The report at `now` of what is done so far.
    fn report(&mut self, now: Instant) -> (u64, Option<f64>) {
        self.last_report = now;
        self.next_at = self.done.saturating_add(self.step());
        (self.done, self.eta_s(now))
    }

    /// Seconds left at the rate measured since the start; `None` before
    /// anything was done.
    fn eta_s(&self, now: Instant) -> Option<f64> {
        if self.done == 0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        let left = self.total.saturating_sub(self.done) as f64;
        Some(elapsed * left / self.done as f64)
    }

    /// The start's report: nothing done, no ETA.
    pub fn start(&mut self, now: Instant) -> (u64, Option<f64>) {
        self.report(now)
    }

    /// Records `n` more steps done (never past the total); `Some` report
    /// when 1% more is done or [`REPORT_INTERVAL`] passed since the last.
    pub fn advance(&mut self, n: u64, now: Instant) -> Option<(u64, Option<f64>)> {
        self.done = self.done.saturating_add(n).min(self.total);
        let due = self.done >= self.next_at
            || now.saturating_duration_since(self.last_report) >= REPORT_INTERVAL;
        due.then(|| self.report(now))
    }

    /// The final report: everything done, nothing left.
    pub fn finish(&mut self, now: Instant) -> (u64, Option<f64>) {
        self.done = self.total;
        self.report(now)
    }
}

/// Reports one phase of a job (`steps_total` rows or bytes).
pub struct ProgressMeter<'a> {
    ctx: &'a JobContext,
    phase: &'static str,
    channel: Channel,
    cadence: Cadence,
    /// When a report last went to the ledger directly ([`Channel::Live`]).
    persisted: Instant,
}

impl<'a> ProgressMeter<'a> {
    /// Starts phase `phase` of `total` steps and reports it (0 done).
    pub fn start(
        ctx: &'a JobContext,
        phase: &'static str,
        total: u64,
        channel: Channel,
    ) -> Result<ProgressMeter<'a>> {
        let now = Instant::now();
        let mut meter = ProgressMeter {
            ctx,
            phase,
            channel,
            cadence: Cadence::new(total, now),
            persisted: now,
        };
        let report = meter.cadence.start(now);
        // The start goes to the ledger (a live meter's first report too).
        let first = if channel == Channel::Live {
            Channel::Direct
        } else {
            channel
        };
        meter.send(report, first)?;
        Ok(meter)
    }

    /// The phase's total steps.
    pub fn total(&self) -> u64 {
        self.cadence.total
    }

    /// Records `n` more steps done; reports when due. Fails with
    /// `cancelled` once cancellation was requested (only when it reports).
    pub fn advance(&mut self, n: u64) -> Result<()> {
        let now = Instant::now();
        let Some(report) = self.cadence.advance(n, now) else {
            return Ok(());
        };
        let channel = match self.channel {
            Channel::Live if now.saturating_duration_since(self.persisted) >= REPORT_INTERVAL => {
                self.persisted = now;
                Channel::Direct
            }
            channel => channel,
        };
        self.send(report, channel)
    }

    /// [`ProgressMeter::advance`] to `done` steps in all (a position, such
    /// as the bytes of a file read so far).
    pub fn advance_to(&mut self, done: u64) -> Result<()> {
        self.advance(done.saturating_sub(self.cadence.done))
    }

    /// Reports the phase complete (`steps_completed == steps_total`,
    /// `eta_s` 0) through `channel` (a job that has let go of its snapshot
    /// may report its end directly).
    pub fn finish(mut self, channel: Channel) -> Result<()> {
        let report = self.cadence.finish(Instant::now());
        self.send(report, channel)
    }

    fn send(&self, (done, eta_s): (u64, Option<f64>), channel: Channel) -> Result<()> {
        // Every field is set: nothing of an earlier phase (its ETA, a
        // message) stays on this one.
        let patch = ProgressPatch {
            phase: Patch::Value(self.phase.to_owned()),
            steps_total: Patch::Value(self.cadence.total),
            steps_completed: Patch::Value(done),
            message: Patch::Null,
            eta_s: eta_s.map_or(Patch::Null, Patch::Value),
        };
        match channel {
            Channel::Direct => self.ctx.report(&patch),
            Channel::Queued => self.ctx.report_queued(&patch),
            Channel::Live => self.ctx.report_live(&patch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every report of a phase of `total` steps advanced `by` at a time,
    /// each advance `tick` after the previous one.
    fn reports(total: u64, by: u64, tick: Duration) -> Vec<(u64, Option<f64>)> {
        let t0 = Instant::now();
        let mut cadence = Cadence::new(total, t0);
        let mut out = vec![cadence.start(t0)];
        let mut now = t0;
        let mut done = 0;
        while done < total {
            now += tick;
            done += by;
            out.extend(cadence.advance(by, now));
        }
        out.push(cadence.finish(now));
        out
    }

    #[test]
    fn reports_every_percent_when_fast() {
        let out = reports(10_000, 7, Duration::from_micros(1));
        // At most 1% (plus the last advance) between two reports.
        for pair in out.windows(2) {
            assert!(pair[1].0 - pair[0].0 <= 100 + 7, "{pair:?}");
        }
        assert!(out.len() >= 90 && out.len() <= 110, "{}", out.len());
        assert_eq!(out.last().unwrap(), &(10_000, Some(0.0)));
    }

    #[test]
    fn reports_every_interval_when_slow() {
        // 10 ms per step of 0.01%: 1% takes a second, so the interval rules.
        let out = reports(10_000, 1, Duration::from_millis(10));
        let between: Vec<u64> = out.windows(2).map(|p| p[1].0 - p[0].0).collect();
        assert!(between[..between.len() - 1].iter().all(|&d| d == 25));
    }

    #[test]
    fn eta_is_null_until_measured_then_follows_the_rate() {
        let out = reports(1_000, 10, Duration::from_millis(1));
        assert_eq!(out[0], (0, None));
        // 10 steps per ms: at 500 done, 50 ms elapsed and 50 ms left.
        let half = out.iter().find(|r| r.0 == 500).unwrap();
        assert!((half.1.unwrap() - 0.05).abs() < 1e-9, "{half:?}");
        assert!(out[1..].iter().all(|r| r.1.is_some()));
    }

    #[test]
    fn an_empty_phase_starts_and_ends_at_zero() {
        let out = reports(0, 1, Duration::from_millis(1));
        assert_eq!(out, vec![(0, None), (0, None)]);
    }

    #[test]
    fn never_counts_past_the_total() {
        let t0 = Instant::now();
        let mut cadence = Cadence::new(10, t0);
        cadence.start(t0);
        assert_eq!(cadence.advance(25, t0).unwrap().0, 10);
    }
}
