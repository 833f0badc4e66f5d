//! Response bytes in pieces: slices a store lends (no copy) and bytes the
//! engine owns, sent in order.
//!
//! A catch-up read of a byte stream is the server's biggest copy. A store
//! whose read already leaves the data in memory it can share (the native
//! host: a page redb read from disk) lends that memory to the response
//! instead of copying it into one buffer; the host writes the pieces to the
//! socket as they are (vectored). Stores that cannot lend copy once into an
//! owned piece, as before.
//!
//! A long read need not be read before its response starts: a store that
//! can read the same bytes again later (the native host) hands out
//! [`Deferred`] windows instead, which the host loads one at a time as the
//! socket drains. The response holds one window in memory, reading and
//! sending overlap, and the engine's lock is not held while disk is read.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::store::StoreError;

/// Memory a store lends to a response: immutable, shared, kept alive by
/// the response until it is sent.
pub type Lent = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// One piece: `range` of `data`.
#[derive(Clone)]
pub struct Piece {
    data: Lent,
    range: Range<usize>,
}

impl Piece {
    /// The piece's bytes.
    pub fn bytes(&self) -> &[u8] {
        &(*self.data).as_ref()[self.range.clone()]
    }

    /// The lent memory and the range of it this piece covers.
    pub fn into_parts(self) -> (Lent, Range<usize>) {
        (self.data, self.range)
    }
}

/// Stream bytes a store reads when the response gets to them (see the
/// module docs).
pub trait Deferred: Send + Sync {
    /// How many bytes [`Deferred::load`] appends.
    fn len(&self) -> usize;

    /// True when [`Deferred::len`] is 0.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the bytes and appends exactly [`Deferred::len`] of them to
    /// `out`, or fails (the stream was deleted meanwhile, or the medium
    /// failed); on failure `out` may hold part of them.
    fn load(&self, out: &mut Pieces) -> Result<(), StoreError>;
}

/// Bytes in pieces, in order: those read (empty pieces are never kept),
/// then those deferred.
#[derive(Clone, Default)]
pub struct Pieces {
    parts: Vec<Piece>,
    len: usize,
    later: Vec<Arc<dyn Deferred>>,
    later_len: usize,
}

impl Pieces {
    /// No bytes.
    pub fn new() -> Pieces {
        Pieces::default()
    }

    /// Appends `range` of lent memory. Panics when `range` is outside it.
    pub fn push_lent(&mut self, data: Lent, range: Range<usize>) {
        assert!(
            self.later.is_empty(),
            "bytes read come before deferred bytes"
        );
        assert!(
            range.start <= range.end && range.end <= (*data).as_ref().len(),
            "a lent range lies inside the lent bytes"
        );
        if range.is_empty() {
            return;
        }
        self.len += range.len();
        self.parts.push(Piece { data, range });
    }

    /// Appends bytes the caller owns.
    pub fn push_owned(&mut self, bytes: Vec<u8>) {
        let len = bytes.len();
        self.push_lent(Arc::new(bytes), 0..len);
    }

    /// Appends bytes to be read later. Bytes pushed after a deferred part
    /// must be deferred too (order is kept); panics otherwise.
    pub fn push_later(&mut self, part: Arc<dyn Deferred>) {
        if part.is_empty() {
            return;
        }
        self.later_len += part.len();
        self.later.push(part);
    }

    /// Total number of bytes, read and deferred.
    pub fn len(&self) -> usize {
        self.len + self.later_len
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of pieces read.
    pub fn count(&self) -> usize {
        self.parts.len()
    }

    /// Number of bytes deferred.
    pub fn deferred(&self) -> usize {
        self.later_len
    }

    /// Reads every deferred part now: afterwards all bytes are in pieces.
    /// On error the bytes are incomplete and should be dropped.
    pub fn load(&mut self) -> Result<(), StoreError> {
        self.later_len = 0;
        for part in std::mem::take(&mut self.later) {
            load_exactly(part.as_ref(), self)?;
        }
        Ok(())
    }

    /// The pieces read, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.parts.iter().map(Piece::bytes)
    }

    /// The pieces read and the deferred parts after them, owned, in order.
    pub fn into_parts(self) -> (Vec<Piece>, Vec<Arc<dyn Deferred>>) {
        (self.parts, self.later)
    }

    /// All bytes read, in one slice: borrowed when there is at most one
    /// piece, else copied. Deferred bytes are not included ([`Pieces::load`]
    /// them first).
    pub fn contiguous(&self) -> Cow<'_, [u8]> {
        match self.parts.as_slice() {
            [] => Cow::Borrowed(&[]),
            [one] => Cow::Borrowed(one.bytes()),
            _ => Cow::Owned(self.to_vec()),
        }
    }

    /// All bytes read, copied into one vector (see [`Pieces::contiguous`]).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for p in self.iter() {
            out.extend_from_slice(p);
        }
        out
    }
}

/// [`Deferred::load`], checked: exactly `part.len()` bytes are appended to
/// `out`, or it is an error.
pub fn load_exactly(part: &dyn Deferred, out: &mut Pieces) -> Result<(), StoreError> {
    let before = out.len();
    part.load(out)?;
    let got = out.len() - before;
    if got == part.len() {
        Ok(())
    } else {
        Err(StoreError::Io {
            detail: format!(
                "a deferred read returned {got} bytes, not {} (the stream was deleted meanwhile?)",
                part.len()
            ),
        })
    }
}

impl From<Vec<u8>> for Pieces {
    fn from(bytes: Vec<u8>) -> Pieces {
        let mut p = Pieces::new();
        p.push_owned(bytes);
        p
    }
}

impl fmt::Debug for Pieces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pieces({} bytes in {}, {} deferred in {})",
            self.len,
            self.parts.len(),
            self.later_len,
            self.later.len()
        )
    }
}

impl PartialEq for Pieces {
    fn eq(&self, other: &Pieces) -> bool {
        self.len == other.len
            && self.later.is_empty()
            && other.later.is_empty()
            && self.contiguous() == other.contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_order_and_length_and_skip_empty_ranges() {
        let lent: Lent = Arc::new(b"hello world".to_vec());
        let mut p = Pieces::new();
        p.push_lent(Arc::clone(&lent), 0..5);
        p.push_lent(Arc::clone(&lent), 3..3);
        p.push_owned(b", ".to_vec());
        p.push_lent(lent, 6..11);
        p.push_owned(Vec::new());
        assert_eq!((p.len(), p.count()), (12, 3));
        assert_eq!(p.to_vec(), b"hello, world");
        assert_eq!(&*p.contiguous(), b"hello, world");
        assert_eq!(
            Pieces::from(b"x".to_vec()).contiguous(),
            Cow::Borrowed(b"x")
        );
        assert!(Pieces::new().contiguous().is_empty());
    }

    #[test]
    #[should_panic(expected = "inside the lent bytes")]
    fn a_range_past_the_lent_bytes_is_refused() {
        Pieces::new().push_lent(Arc::new(vec![1u8, 2]), 1..3);
    }
}
