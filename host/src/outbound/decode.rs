//! Response content decoding (`gzip`, `deflate`, `br`) as the body streams
//! in, with the size cap applied to the decoded bytes: a small compressed
//! bomb stops at the cap, never holding more than the cap plus the decoders'
//! fixed buffers.

use std::io::{self, Write};

use brotli_decompressor::DecompressorWriter;
use flate2::write::{GzDecoder, ZlibDecoder};

use crate::exchange::SendError;

/// The `Accept-Encoding` the host sends: every coding [`Decoder`] handles.
pub(super) const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// A streaming decoder for one response body.
pub(super) enum Decoder {
    /// No content coding.
    Identity(Capped),
    /// `gzip` (also `x-gzip`).
    Gzip(GzDecoder<Capped>),
    /// `deflate`, which HTTP defines as the zlib format (RFC 1950).
    Deflate(ZlibDecoder<Capped>),
    /// `br`.
    Brotli(Box<DecompressorWriter<Capped>>),
}

/// Brotli's internal output buffer.
const BROTLI_BUFFER: usize = 8 << 10;

impl Decoder {
    /// The decoder for a `Content-Encoding` value (`None`: no header), with
    /// decoded output capped at `cap` bytes. A coding the host does not
    /// handle, or a list of codings, is a `protocol` error.
    pub(super) fn for_encoding(encoding: Option<&[u8]>, cap: usize) -> Result<Self, SendError> {
        let out = Capped {
            data: Vec::new(),
            cap,
            exceeded: false,
        };
        let Some(raw) = encoding else {
            return Ok(Self::Identity(out));
        };
        let coding = String::from_utf8_lossy(raw).trim().to_ascii_lowercase();
        Ok(match coding.as_str() {
            "" | "identity" => Self::Identity(out),
            "gzip" | "x-gzip" => Self::Gzip(GzDecoder::new(out)),
            "deflate" => Self::Deflate(ZlibDecoder::new(out)),
            "br" => Self::Brotli(Box::new(DecompressorWriter::new(out, BROTLI_BUFFER))),
            _ => {
                return Err(SendError::Protocol(format!(
                    "unsupported response Content-Encoding `{coding}`"
                )));
            }
        })
    }

    /// Feeds one chunk of the body as it came over the wire.
    pub(super) fn write(&mut self, chunk: &[u8]) -> Result<(), SendError> {
        let result = match self {
            Self::Identity(out) => out.write_all(chunk),
            Self::Gzip(d) => d.write_all(chunk),
            Self::Deflate(d) => d.write_all(chunk),
            Self::Brotli(d) => d.write_all(chunk),
        };
        result.map_err(|e| self.error(e))
    }

    /// Ends the body: checks the stream is complete and returns the decoded bytes.
    pub(super) fn finish(mut self) -> Result<Vec<u8>, SendError> {
        let result = match &mut self {
            Self::Identity(_) => Ok(()),
            Self::Gzip(d) => d.try_finish(),
            Self::Deflate(d) => d.try_finish(),
            Self::Brotli(d) => d.close(),
        };
        result.map_err(|e| self.error(e))?;
        Ok(match self {
            Self::Identity(out) => out.data,
            Self::Gzip(mut d) => std::mem::take(&mut d.get_mut().data),
            Self::Deflate(mut d) => std::mem::take(&mut d.get_mut().data),
            Self::Brotli(mut d) => std::mem::take(&mut d.get_mut().data),
        })
    }

    fn output(&self) -> &Capped {
        match self {
            Self::Identity(out) => out,
            Self::Gzip(d) => d.get_ref(),
            Self::Deflate(d) => d.get_ref(),
            Self::Brotli(d) => d.get_ref(),
        }
    }

    /// `too-large` when the cap stopped the write, else a `protocol` error
    /// for a malformed or truncated stream.
    fn error(&self, e: io::Error) -> SendError {
        let out = self.output();
        if out.exceeded {
            SendError::TooLarge(format!(
                "the response body exceeds {} bytes (decoded)",
                out.cap
            ))
        } else {
            SendError::Protocol(format!("cannot decode the response body: {e}"))
        }
    }
}

/// Decoded output that refuses to grow past its cap.
pub(super) struct Capped {
    data: Vec<u8>,
    cap: usize,
    exceeded: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.data.len() + buf.len() > self.cap {
            self.exceeded = true;
            return Err(io::Error::other("decoded size cap reached"));
        }
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decode(encoding: &str, body: &[u8], cap: usize) -> Result<Vec<u8>, SendError> {
        let mut d = Decoder::for_encoding(Some(encoding.as_bytes()), cap)?;
        for chunk in body.chunks(7) {
            d.write(chunk)?;
        }
        d.finish()
    }

    #[test]
    fn gzip_and_deflate_round_trip_in_small_chunks() {
        let text = b"hello hello hello hello".repeat(10);
        assert_eq!(decode("gzip", &gzip(&text), 1 << 20).unwrap(), text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).unwrap();
        assert_eq!(
            decode("Deflate", &z.finish().unwrap(), 1 << 20).unwrap(),
            text
        );
    }

    #[test]
    fn the_cap_applies_to_decoded_bytes() {
        let bomb = gzip(&vec![0; 1 << 20]);
        assert!(
            bomb.len() < 2 << 10,
            "1 MiB of zeros compresses to {} bytes",
            bomb.len()
        );
        assert!(matches!(
            decode("gzip", &bomb, 64 << 10),
            Err(SendError::TooLarge(_))
        ));
        assert!(matches!(
            decode("identity", &[0; 10], 9),
            Err(SendError::TooLarge(_))
        ));
        assert_eq!(decode("identity", &[0; 10], 10).unwrap().len(), 10);
    }

    #[test]
    fn truncated_or_unknown_codings_are_protocol_errors() {
        let full = gzip(b"some text that is long enough to be cut");
        assert!(matches!(
            decode("gzip", &full[..full.len() - 4], 1 << 20),
            Err(SendError::Protocol(_))
        ));
        assert!(matches!(
            decode("br", b"\xff\xff\xff\xff", 1 << 20),
            Err(SendError::Protocol(_))
        ));
        assert!(matches!(
            Decoder::for_encoding(Some(b"gzip, br"), 1),
            Err(SendError::Protocol(_))
        ));
        assert!(matches!(
            Decoder::for_encoding(Some(b"zstd"), 1),
            Err(SendError::Protocol(_))
        ));
    }
}
