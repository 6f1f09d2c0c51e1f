//! The codec of every Polaris service: prost's, except that a request that does not decode is the client's
//! mistake, answered `INVALID_ARGUMENT` with `ErrorInfo {reason: VALIDATION_FAILED}` as REST answers malformed
//! JSON with `400` (prost's codec answers `INTERNAL`, which Polaris keeps for its own failures).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

pub struct PolarisCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for PolarisCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for PolarisCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = PolarisDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        PolarisDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

pub struct PolarisDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for PolarisDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|e| {
            let detail = format!("the request is not a valid protobuf message: {}", e.message());
            crate::status::status(&polaris_app::AppError::validation(detail, None))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
