//! The gRPC contract (`proto/onprem/v1/`), compiled by `build.rs`.

/// `onprem.v1`: agent ↔ control plane, and the fleet API.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("onprem.v1");
}

impl v1::MetricType {
    /// The word of the text format's `# TYPE` line (`untyped` when not
    /// said).
    pub fn text_name(self) -> &'static str {
        match self {
            v1::MetricType::Counter => "counter",
            v1::MetricType::Gauge => "gauge",
            v1::MetricType::Summary => "summary",
            v1::MetricType::Histogram => "histogram",
            v1::MetricType::Untyped | v1::MetricType::Unspecified => "untyped",
        }
    }
}

/// Metric families' metadata by family name, as telemetry uploads carry
/// it ([`v1::MetricMetadata`]), and which family an uploaded series
/// belongs to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Families(std::collections::BTreeMap<String, v1::MetricMetadata>);

impl Families {
    /// Takes what `metadata` says, replacing what was known of those
    /// families; entries without a family name are skipped.
    pub fn learn<'a>(&mut self, metadata: impl IntoIterator<Item = &'a v1::MetricMetadata>) {
        for m in metadata {
            if !m.family.is_empty() {
                self.0.insert(m.family.clone(), m.clone());
            }
        }
    }

    /// The metadata of the family `name`.
    pub fn get(&self, name: &str) -> Option<&v1::MetricMetadata> {
        self.0.get(name)
    }

    /// The family the series `series` belongs to: the family of that
    /// name, else the histogram whose `_bucket`, `_sum` or `_count` it
    /// is, or the summary whose `_sum` or `_count` it is.
    pub fn family_of(&self, series: &str) -> Option<&v1::MetricMetadata> {
        if let Some(m) = self.0.get(series) {
            return Some(m);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            let Some(base) = series.strip_suffix(suffix) else {
                continue;
            };
            let Some(m) = self.0.get(base) else {
                continue;
            };
            match m.r#type() {
                v1::MetricType::Histogram => return Some(m),
                v1::MetricType::Summary if suffix != "_bucket" => return Some(m),
                _ => {}
            }
        }
        None
    }

    /// Every family's metadata, by name.
    pub fn iter(&self) -> impl Iterator<Item = &v1::MetricMetadata> {
        self.0.values()
    }

    /// How many families are known.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Initial size of a call's encode and decode buffers, each way.
pub const CODEC_BUFFER: usize = 1024;

/// The codec of every call: protobuf (prost), with buffers that start at
/// [`CODEC_BUFFER`] instead of tonic's 8 KiB and grow with what they
/// carry. A call is a buffer each way at each end, and a tunnel is a
/// call (two at the control plane) that may sit idle for hours: at 8 KiB
/// each, a thousand idle tunnels held tens of megabytes of buffers.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(std::marker::PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<T, U>::raw_decoder(settings())
    }
}

/// The buffer settings: [`CODEC_BUFFER`] to start, and tonic's default
/// for how much is encoded before it is handed to HTTP/2 (32 KiB).
fn settings() -> tonic::codec::BufferSettings {
    tonic::codec::BufferSettings::new(CODEC_BUFFER, 32 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(family: &str, t: v1::MetricType) -> v1::MetricMetadata {
        v1::MetricMetadata {
            family: family.into(),
            r#type: t as i32,
            help: format!("{family} help"),
            unit: String::new(),
        }
    }

    #[test]
    fn series_find_their_family() {
        let mut f = Families::default();
        f.learn(&[
            meta("a_seconds", v1::MetricType::Histogram),
            meta("b", v1::MetricType::Summary),
            meta("c_count", v1::MetricType::Gauge),
            meta("d", v1::MetricType::Gauge),
            meta("", v1::MetricType::Gauge),
        ]);
        assert_eq!(f.len(), 4);
        let fam = |s: &str| f.family_of(s).map(|m| m.family.as_str());
        assert_eq!(fam("a_seconds_bucket"), Some("a_seconds"));
        assert_eq!(fam("a_seconds_sum"), Some("a_seconds"));
        assert_eq!(fam("a_seconds_count"), Some("a_seconds"));
        assert_eq!(fam("b"), Some("b"));
        assert_eq!(fam("b_sum"), Some("b"));
        assert_eq!(fam("b_bucket"), None, "a summary has no buckets");
        assert_eq!(fam("c_count"), Some("c_count"), "a gauge named _count");
        assert_eq!(fam("d_sum"), None, "a gauge has no _sum");
        assert_eq!(fam("e"), None);
        // A family's metadata is replaced by what is learnt later.
        f.learn(&[meta("d", v1::MetricType::Counter)]);
        assert_eq!(
            f.get("d").map(|m| m.r#type()),
            Some(v1::MetricType::Counter)
        );
        assert_eq!(v1::MetricType::Counter.text_name(), "counter");
        assert_eq!(v1::MetricType::Unspecified.text_name(), "untyped");
    }
}
