//! timex collector: the kernel clock's discipline state from adjtimex(2) (read-only: modes 0),
//! with node_exporter 1.12's families and scaling: offset and PPS jitter in µs, or in ns when
//! the status has STA_NANO; frequencies in 2^-16 ppm; max/estimated error and tick in µs;
//! `node_timex_sync_status` 0 when the call returns TIME_ERROR (clock not synchronised).
//! EPERM (seccomp) is no data, any other error fails the collector.

use super::{Collector, Family, MetricType, Options};

/// adjtimex's clock state "not synchronised".
const TIME_ERROR: i32 = 5;
/// Status bit: offset and jitter are in nanoseconds.
const STA_NANO: i64 = 0x2000;
/// Scaled ppm: adjtimex(2) frequencies are ppm with a 16-bit fraction.
const PPM16FRAC: f64 = 1_000_000.0 * 65536.0;

/// What adjtimex reports (the fields node_exporter exports), and its return value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timex {
    pub state: i32,
    pub offset: i64,
    pub freq: i64,
    pub maxerror: i64,
    pub esterror: i64,
    pub status: i64,
    pub constant: i64,
    pub tick: i64,
    pub ppsfreq: i64,
    pub jitter: i64,
    pub shift: i64,
    pub stabil: i64,
    pub jitcnt: i64,
    pub calcnt: i64,
    pub errcnt: i64,
    pub stbcnt: i64,
    pub tai: i64,
}

/// Reads the kernel's clock state.
pub fn read() -> std::io::Result<Timex> {
    // SAFETY: a zeroed timex with modes 0 asks for the state only; adjtimex fills the struct.
    let mut t: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut t) };
    if state < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Timex {
        state,
        offset: t.offset as i64,
        freq: t.freq as i64,
        maxerror: t.maxerror as i64,
        esterror: t.esterror as i64,
        status: i64::from(t.status),
        constant: t.constant as i64,
        tick: t.tick as i64,
        ppsfreq: t.ppsfreq as i64,
        jitter: t.jitter as i64,
        shift: i64::from(t.shift),
        stabil: t.stabil as i64,
        jitcnt: t.jitcnt as i64,
        calcnt: t.calcnt as i64,
        errcnt: t.errcnt as i64,
        stbcnt: t.stbcnt as i64,
        tai: i64::from(t.tai),
    })
}

fn render(t: &Timex, out: &mut Vec<Family>) {
    let divisor = if t.status & STA_NANO != 0 { 1e9 } else { 1e6 };
    let sync = if t.state == TIME_ERROR { 0.0 } else { 1.0 };
    let g = MetricType::Gauge;
    let c = MetricType::Counter;
    let fams: [(&'static str, &'static str, MetricType, f64); 17] = [
        (
            "node_timex_sync_status",
            "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
            g,
            sync,
        ),
        (
            "node_timex_offset_seconds",
            "Time offset in between local system and reference clock.",
            g,
            t.offset as f64 / divisor,
        ),
        (
            "node_timex_frequency_adjustment_ratio",
            "Local clock frequency adjustment.",
            g,
            1.0 + t.freq as f64 / PPM16FRAC,
        ),
        (
            "node_timex_maxerror_seconds",
            "Maximum error in seconds.",
            g,
            t.maxerror as f64 / 1e6,
        ),
        (
            "node_timex_estimated_error_seconds",
            "Estimated error in seconds.",
            g,
            t.esterror as f64 / 1e6,
        ),
        (
            "node_timex_status",
            "Value of the status array bits.",
            g,
            t.status as f64,
        ),
        (
            "node_timex_loop_time_constant",
            "Phase-locked loop time constant.",
            g,
            t.constant as f64,
        ),
        (
            "node_timex_tick_seconds",
            "Seconds between clock ticks.",
            g,
            t.tick as f64 / 1e6,
        ),
        (
            "node_timex_pps_frequency_hertz",
            "Pulse per second frequency.",
            g,
            t.ppsfreq as f64 / PPM16FRAC,
        ),
        (
            "node_timex_pps_jitter_seconds",
            "Pulse per second jitter.",
            g,
            t.jitter as f64 / divisor,
        ),
        (
            "node_timex_pps_shift_seconds",
            "Pulse per second interval duration.",
            g,
            t.shift as f64,
        ),
        (
            "node_timex_pps_stability_hertz",
            "Pulse per second stability, average of recent frequency changes.",
            g,
            t.stabil as f64 / PPM16FRAC,
        ),
        (
            "node_timex_pps_jitter_total",
            "Pulse per second count of jitter limit exceeded events.",
            c,
            t.jitcnt as f64,
        ),
        (
            "node_timex_pps_calibration_total",
            "Pulse per second count of calibration intervals.",
            c,
            t.calcnt as f64,
        ),
        (
            "node_timex_pps_error_total",
            "Pulse per second count of calibration errors.",
            c,
            t.errcnt as f64,
        ),
        (
            "node_timex_pps_stability_exceeded_total",
            "Pulse per second count of stability limit exceeded events.",
            c,
            t.stbcnt as f64,
        ),
        (
            "node_timex_tai_offset_seconds",
            "International Atomic Time (TAI) offset.",
            g,
            t.tai as f64,
        ),
    ];
    for (name, help, kind, v) in fams {
        out.push(Family::single(name, help, kind, v));
    }
}

struct TimexCollector;

impl Collector for TimexCollector {
    fn collect(&self, out: &mut Vec<Family>) -> anyhow::Result<()> {
        let t = match read() {
            Ok(t) => t,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                anyhow::bail!("not collecting timex metrics: {e}")
            }
            Err(e) => anyhow::bail!("failed to retrieve adjtimex stats: {e}"),
        };
        render(&t, out);
        Ok(())
    }
}

pub fn build(_: &Options) -> anyhow::Result<Box<dyn Collector>> {
    Ok(Box::new(TimexCollector))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Timex) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        render(t, &mut out);
        out.into_iter()
            .map(|f| (f.name.into_owned(), f.samples[0].value))
            .collect()
    }

    fn get(v: &[(String, f64)], name: &str) -> f64 {
        v.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn micro_and_nanosecond_scaling() {
        let mut t = Timex {
            state: 0,
            offset: -2500,
            freq: -1_638_400, // -25 ppm
            maxerror: 16_000,
            esterror: 1_500,
            status: 0x2001, // STA_PLL | STA_NANO
            constant: 7,
            tick: 10_000,
            ppsfreq: 65536,
            jitter: 200,
            shift: 4,
            stabil: 131072,
            jitcnt: 1,
            calcnt: 2,
            errcnt: 3,
            stbcnt: 4,
            tai: 37,
        };
        let v = values(&t);
        assert_eq!(v.len(), 17);
        assert_eq!(get(&v, "node_timex_sync_status"), 1.0);
        assert_eq!(get(&v, "node_timex_offset_seconds"), -2.5e-6);
        assert_eq!(get(&v, "node_timex_pps_jitter_seconds"), 2e-7);
        let ratio = get(&v, "node_timex_frequency_adjustment_ratio");
        assert!((ratio - 0.999975).abs() < 1e-15, "{ratio}");
        assert_eq!(get(&v, "node_timex_maxerror_seconds"), 0.016);
        assert_eq!(get(&v, "node_timex_estimated_error_seconds"), 0.0015);
        assert_eq!(get(&v, "node_timex_status"), 8193.0);
        assert_eq!(get(&v, "node_timex_tick_seconds"), 0.01);
        assert_eq!(get(&v, "node_timex_pps_frequency_hertz"), 1e-6);
        assert_eq!(get(&v, "node_timex_pps_stability_hertz"), 2e-6);
        assert_eq!(get(&v, "node_timex_pps_shift_seconds"), 4.0);
        assert_eq!(get(&v, "node_timex_tai_offset_seconds"), 37.0);
        // Microseconds without STA_NANO; TIME_ERROR is "not synchronised".
        t.status = 0x40; // STA_UNSYNC
        t.state = TIME_ERROR;
        let v = values(&t);
        assert_eq!(get(&v, "node_timex_offset_seconds"), -0.0025);
        assert_eq!(get(&v, "node_timex_pps_jitter_seconds"), 0.0002);
        assert_eq!(get(&v, "node_timex_sync_status"), 0.0);
    }

    #[test]
    fn reads_the_kernel() {
        // adjtimex with modes 0 needs no privilege.
        let t = read().unwrap();
        assert!((0..=5).contains(&t.state), "{t:?}");
        assert!(t.tick > 0);
    }
}
