//! The Prometheus text format (0.0.4) and OpenMetrics text (1.0.0), written family by
//! family. The two differ in small ways this file owns: a counter's family is `x_total` in
//! Prometheus' `# TYPE` line and `x` in OpenMetrics', and OpenMetrics ends with `# EOF`.

use crate::{HistogramSnapshot, DURATION_BOUNDS_NS};
use std::fmt::Write;

/// Which text format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header ranks it at least as high as plain text (as
    /// Prometheus' own scraper asks), else the Prometheus format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut openmetrics, mut text) = (0.0f64, 0.0f64);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A sample's value as the formats spell numbers.
pub trait MetricValue {
    fn write_to(&self, out: &mut String);
}

macro_rules! integer_value {
    ($($t:ty),*) => {$(
        impl MetricValue for $t {
            fn write_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}
integer_value!(u64, i64, usize, i32, u32);

impl MetricValue for f64 {
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// A scrape's body, built one family at a time: `family` opens one (its HELP and TYPE),
/// then its samples follow. A family must be opened once, its samples together.
#[derive(Debug)]
pub struct Exposition {
    format: Format,
    out: String,
    /// The open family's name and kind.
    name: String,
    kind: Kind,
}

impl Exposition {
    pub fn new(format: Format) -> Exposition {
        Exposition {
            format,
            out: String::with_capacity(16 * 1024),
            name: String::new(),
            kind: Kind::Gauge,
        }
    }

    /// Opens a family. `name` is without `_total` for a counter.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        self.name.clear();
        self.name.push_str(name);
        self.kind = kind;
        let (type_name, kind_name) = match (kind, self.format) {
            (Kind::Counter, Format::Prometheus) => (format!("{name}_total"), "counter"),
            (Kind::Counter, Format::OpenMetrics) => (name.to_string(), "counter"),
            (Kind::Gauge, _) => (name.to_string(), "gauge"),
            (Kind::Histogram, _) => (name.to_string(), "histogram"),
        };
        let _ = writeln!(
            self.out,
            "# HELP {type_name} {}",
            escape_help(help, self.format)
        );
        let _ = writeln!(self.out, "# TYPE {type_name} {kind_name}");
    }

    /// A counter's or gauge's sample in the open family.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl MetricValue) {
        let suffix = match self.kind {
            Kind::Counter => "_total",
            _ => "",
        };
        self.line(suffix, labels, None, &value);
    }

    /// A histogram's samples in the open family: buckets (in seconds), sum and count.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        for (bound, count) in DURATION_BOUNDS_NS.iter().zip(&h.cumulative) {
            let le = format!("{}", *bound as f64 / 1e9);
            self.line("_bucket", labels, Some(&le), count);
        }
        self.line("_bucket", labels, Some("+Inf"), &h.count());
        self.line("_sum", labels, None, &h.sum_seconds);
        self.line("_count", labels, None, &h.count());
    }

    fn line(
        &mut self,
        suffix: &str,
        labels: &[(&str, &str)],
        le: Option<&str>,
        value: &dyn MetricValue,
    ) {
        self.out.push_str(&self.name);
        self.out.push_str(suffix);
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (k, v)) in all.enumerate() {
            self.out.push(if i == 0 { '{' } else { ',' });
            self.out.push_str(k);
            self.out.push_str("=\"");
            escape_label(&mut self.out, v);
            self.out.push('"');
        }
        if !labels.is_empty() || le.is_some() {
            self.out.push('}');
        }
        self.out.push(' ');
        value.write_to(&mut self.out);
        self.out.push('\n');
    }

    /// The body, ended as its format requires.
    pub fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escaped: backslash and newline in both formats, and the double quote in
/// OpenMetrics (whose HELP is escaped as label values are).
fn escape_help(help: &str, format: Format) -> String {
    let text = help.replace('\\', "\\\\").replace('\n', "\\n");
    match format {
        Format::OpenMetrics => text.replace('"', "\\\""),
        Format::Prometheus => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DurationHistogram;

    #[test]
    fn openmetrics_is_chosen_only_when_asked_for_at_least_as_high_as_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::Prometheus
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0")),
            Format::Prometheus
        );
    }

    fn body(format: Format) -> String {
        let mut e = Exposition::new(format);
        e.family("strom_in_bytes", Kind::Counter, "Bytes in.\nSecond line");
        e.sample(&[("topic", "a\"b\\c\nd")], 7u64);
        e.family("strom_up", Kind::Gauge, "Up");
        e.sample(&[], 1i64);
        e.family("strom_latency_seconds", Kind::Histogram, "Latency");
        let h = DurationHistogram::new();
        h.observe_ns(1_000_000);
        e.histogram(&[("api", "Produce")], &h.snapshot());
        e.finish()
    }

    #[test]
    fn prometheus_text_names_a_counter_family_with_total_and_escapes_labels() {
        let text = body(Format::Prometheus);
        assert!(text.contains("# HELP strom_in_bytes_total Bytes in.\\nSecond line\n"));
        assert!(text.contains("# TYPE strom_in_bytes_total counter\n"));
        assert!(text.contains("strom_in_bytes_total{topic=\"a\\\"b\\\\c\\nd\"} 7\n"));
        assert!(text.contains("strom_up 1\n"));
        assert!(text.contains("strom_latency_seconds_bucket{api=\"Produce\",le=\"0.0005\"} 0\n"));
        assert!(text.contains("strom_latency_seconds_bucket{api=\"Produce\",le=\"0.001\"} 1\n"));
        assert!(text.contains("strom_latency_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("strom_latency_seconds_sum{api=\"Produce\"} 0.001\n"));
        assert!(text.contains("strom_latency_seconds_count{api=\"Produce\"} 1\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_names_a_counter_family_without_total_and_ends_with_eof() {
        let text = body(Format::OpenMetrics);
        assert!(text.contains("# TYPE strom_in_bytes counter\n"));
        assert!(text.contains("strom_in_bytes_total{"));
        assert!(text.ends_with("strom_latency_seconds_count{api=\"Produce\"} 1\n# EOF\n"));
    }

    #[test]
    fn special_floats_are_spelled_as_the_formats_want() {
        let mut s = String::new();
        f64::INFINITY.write_to(&mut s);
        s.push(' ');
        f64::NEG_INFINITY.write_to(&mut s);
        s.push(' ');
        f64::NAN.write_to(&mut s);
        s.push(' ');
        0.25f64.write_to(&mut s);
        assert_eq!(s, "+Inf -Inf NaN 0.25");
    }
}
