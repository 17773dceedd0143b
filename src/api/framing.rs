//! Refusing a request whose length is stated two ways.
//!
//! A request with both `Content-Length` and `Transfer-Encoding` is how requests are smuggled
//! past a proxy that reads one header while hookd reads the other. hyper reads such a request by
//! `Transfer-Encoding` and drops the length before a handler sees it, so hookd watches the bytes
//! itself: [`Framing`] follows the request heads and bodies on one connection as they are read
//! (without copying bodies), and notes which request, counted from zero, stated both. The
//! connection's service then answers that request with a `400` (and hyper closes the connection
//! after it, as it does for every such request).
//!
//! The scanner only watches; hyper still parses. If the scanner meets anything it does not
//! follow (a head it cannot parse, an upgrade), it stops watching rather than guess.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest request head followed; hyper refuses longer ones anyway.
const MAX_HEAD: usize = 64 * 1024;
/// Header lines followed per request (hyper's own limit).
const MAX_HEADERS: usize = 100;

/// Where the scanner is in the byte stream.
#[derive(Debug)]
enum State {
    /// Reading a request head; the bytes so far when it spans reads.
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Fixed(u64),
    /// Reading a chunk-size line (bytes so far).
    ChunkSize(Vec<u8>),
    /// Skipping this many chunk bytes, then the CRLF after them.
    ChunkData(u64),
    /// Skipping the CRLF after a chunk: bytes still to skip.
    ChunkEnd(u8),
    /// Skipping trailer lines after the last chunk: length of the current line.
    Trailers(usize),
    /// No longer watching.
    Off,
}

/// Follows the requests on one connection and finds the first that states its length twice.
#[derive(Debug)]
pub struct Framing {
    state: State,
    /// Requests whose head has been read so far.
    heads: u64,
    /// The index of the first request with both length headers, once seen.
    ambiguous: Option<u64>,
}

impl Default for Framing {
    fn default() -> Self {
        Self {
            state: State::Head(Vec::new()),
            heads: 0,
            ambiguous: None,
        }
    }
}

impl Framing {
    /// The index (from 0) of the first request that carried both `Content-Length` and
    /// `Transfer-Encoding`, if one has been read.
    pub fn ambiguous(&self) -> Option<u64> {
        self.ambiguous
    }

    /// Follows `bytes`, the next bytes read from the connection.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let used = match &mut self.state {
                State::Off => return,
                State::Head(buf) if buf.is_empty() => match self.head(bytes) {
                    Some(used) => used,
                    None => {
                        if bytes.len() > MAX_HEAD {
                            self.state = State::Off;
                        } else if let State::Head(buf) = &mut self.state {
                            buf.extend_from_slice(bytes);
                        }
                        bytes.len()
                    }
                },
                State::Head(buf) => {
                    let before = buf.len();
                    buf.extend_from_slice(bytes);
                    let joined = std::mem::take(buf);
                    match self.head(&joined) {
                        Some(used) => used - before,
                        None if joined.len() > MAX_HEAD => {
                            self.state = State::Off;
                            bytes.len()
                        }
                        None => {
                            self.state = State::Head(joined);
                            bytes.len()
                        }
                    }
                }
                State::Fixed(left) => {
                    let used = (*left).min(bytes.len() as u64);
                    *left -= used;
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                    used as usize
                }
                State::ChunkSize(buf) => {
                    let before = buf.len();
                    buf.extend_from_slice(&bytes[..bytes.len().min(MAX_HEAD)]);
                    match httparse::parse_chunk_size(buf) {
                        Ok(httparse::Status::Complete((used, 0))) => {
                            self.state = State::Trailers(0);
                            used - before
                        }
                        Ok(httparse::Status::Complete((used, size))) => {
                            self.state = State::ChunkData(size);
                            used - before
                        }
                        Ok(httparse::Status::Partial) if buf.len() < 1024 => buf.len() - before,
                        _ => {
                            self.state = State::Off;
                            return;
                        }
                    }
                }
                State::ChunkData(left) => {
                    let used = (*left).min(bytes.len() as u64);
                    *left -= used;
                    if *left == 0 {
                        self.state = State::ChunkEnd(2);
                    }
                    used as usize
                }
                State::ChunkEnd(left) => {
                    *left -= 1;
                    if *left == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                    1
                }
                State::Trailers(line) => {
                    let byte = bytes[0];
                    if byte == b'\n' {
                        if *line == 0 {
                            self.state = State::Head(Vec::new());
                        } else {
                            *line = 0;
                        }
                    } else if byte != b'\r' {
                        *line += 1;
                    }
                    1
                }
            };
            bytes = &bytes[used..];
        }
    }

    /// Reads one request head from the start of `bytes`: how many bytes it took, or `None` when
    /// the head is not complete yet. Sets the next state.
    fn head(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let used = match request.parse(bytes) {
            Ok(httparse::Status::Complete(used)) => used,
            Ok(httparse::Status::Partial) => return None,
            Err(_) => {
                self.state = State::Off;
                return Some(bytes.len());
            }
        };
        let index = self.heads;
        self.heads += 1;
        let (mut length, mut chunked, mut encoded, mut upgrade) = (None, false, false, false);
        for header in request.headers.iter() {
            let value = header.value;
            if header.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if length.is_none() {
                    self.state = State::Off;
                    return Some(used);
                }
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                encoded = true;
                chunked = value
                    .rsplit(|b| *b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if header.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if encoded && length.is_some() {
            self.ambiguous.get_or_insert(index);
        }
        self.state = if upgrade || request.method == Some("CONNECT") || (encoded && !chunked) {
            State::Off
        } else if chunked {
            State::ChunkSize(Vec::new())
        } else {
            match length {
                Some(n) if n > 0 => State::Fixed(n),
                _ => State::Head(Vec::new()),
            }
        };
        Some(used)
    }
}

/// What a connection's service learns from its [`Framing`]: the first ambiguous request's index.
#[derive(Debug, Clone)]
pub struct AmbiguousAt(Arc<AtomicU64>);

impl AmbiguousAt {
    /// Whether the request with this index (from 0) stated its length twice.
    pub fn is(&self, index: u64) -> bool {
        self.0.load(Ordering::Acquire) == index
    }
}

/// A connection whose reads are followed by a [`Framing`].
pub struct Watched<I> {
    inner: I,
    framing: Framing,
    seen: AmbiguousAt,
}

impl<I> Watched<I> {
    /// Wraps `inner`; the second value tells the service which request to refuse.
    pub fn new(inner: I) -> (Self, AmbiguousAt) {
        let seen = AmbiguousAt(Arc::new(AtomicU64::new(u64::MAX)));
        let watched = Self {
            inner,
            framing: Framing::default(),
            seen: seen.clone(),
        };
        (watched, seen)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll
            && this.framing.ambiguous().is_none()
        {
            this.framing.feed(&buf.filled()[start..]);
            if let Some(index) = this.framing.ambiguous() {
                this.seen.0.store(index, Ordering::Release);
            }
        }
        poll
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ambiguous_in(pieces: &[&[u8]]) -> Option<u64> {
        let mut framing = Framing::default();
        for piece in pieces {
            framing.feed(piece);
        }
        framing.ambiguous()
    }

    const CLEAN: &[u8] = b"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    const CHUNKED: &[u8] = b"POST /v1/events HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
    const BOTH: &[u8] = b"POST /v1/events HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    const BOTH_REVERSED: &[u8] = b"POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 0\r\n\r\n0\r\n\r\n";

    #[test]
    fn requests_that_state_their_length_once_are_never_flagged() {
        assert_eq!(
            ambiguous_in(&[CLEAN, CHUNKED, CLEAN, b"GET / HTTP/1.1\r\n\r\n"]),
            None
        );
    }

    #[test]
    fn a_request_with_both_length_headers_is_found_by_its_index() {
        assert_eq!(ambiguous_in(&[BOTH]), Some(0));
        assert_eq!(ambiguous_in(&[BOTH_REVERSED]), Some(0));
        assert_eq!(ambiguous_in(&[CLEAN, CHUNKED, BOTH]), Some(2));
    }

    #[test]
    fn bodies_that_look_like_requests_are_skipped_not_read_as_heads() {
        let inner = "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let outer = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{inner}",
            inner.len()
        );
        let smuggled = outer.as_bytes();
        assert_eq!(ambiguous_in(&[smuggled, CLEAN]), None);
    }

    #[test]
    fn the_stream_may_be_cut_anywhere() {
        let stream = [CLEAN, CHUNKED, CLEAN, BOTH].concat();
        for size in 1..=stream.len() {
            let pieces: Vec<&[u8]> = stream.chunks(size).collect();
            assert_eq!(ambiguous_in(&pieces), Some(3), "pieces of {size} bytes");
        }
    }

    #[test]
    fn what_it_cannot_follow_stops_the_watch() {
        assert_eq!(ambiguous_in(&[b"NOT HTTP AT ALL\r\n\r\n", BOTH]), None);
        assert_eq!(
            ambiguous_in(&[b"GET / HTTP/1.1\r\nUpgrade: x\r\n\r\n", BOTH]),
            None
        );
    }
}
