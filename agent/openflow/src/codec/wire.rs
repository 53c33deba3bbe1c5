//! Bounds-checked big-endian reading and writing helpers shared by the codec. Every read
//! returns [`CodecError::Truncated`] instead of panicking when the input is short.

use super::CodecError;

/// A cursor over a byte slice; every read is bounds-checked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What is being decoded, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.remaining() < n {
            return Err(CodecError::Truncated {
                what: self.what,
                need: n,
                have: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Splits off the next `n` bytes as their own reader.
    pub(crate) fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, CodecError> {
        let b = self.bytes(n)?;
        Ok(Reader::new(b, what))
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        self.bytes(n).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Peeks a big-endian u32 at the cursor without consuming it.
    pub(crate) fn peek_u32(&self) -> Result<u32, CodecError> {
        let mut c = *self;
        c.u32()
    }

    /// Peeks a big-endian u16 at the cursor without consuming it.
    pub(crate) fn peek_u16(&self) -> Result<u16, CodecError> {
        let mut c = *self;
        c.u16()
    }
}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}
pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}
pub(crate) fn put_zeros(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, 0);
}

/// Pads `out` with zeros so that the bytes written since `start` are a multiple of 8.
pub(crate) fn pad8_from(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    put_zeros(out, (8 - len % 8) % 8);
}

/// Rounds up to a multiple of 8.
pub(crate) fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// Writes a big-endian u16 at `at` (used to patch in lengths after the body is written).
pub(crate) fn patch_u16(out: &mut [u8], at: usize, v: u16) {
    out[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Converts a computed length to u16, failing when the object is too large for OpenFlow.
pub(crate) fn len16(n: usize, what: &'static str) -> Result<u16, CodecError> {
    u16::try_from(n).map_err(|_| CodecError::TooLong { what, len: n })
}
