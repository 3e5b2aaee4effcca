//! The gRPC contract (`proto/onprem/v1/`), compiled by `build.rs`.

/// `onprem.v1`: agent ↔ control plane, and the fleet API.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod v1 {
    tonic::include_proto!("onprem.v1");
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
