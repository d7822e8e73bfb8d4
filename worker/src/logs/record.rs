//! One record per line: `<Unix ns> <kind> <bytes>\n`, kind `o`/`e` for a stdout/stderr line and `O`/`E` for a
//! partial one (no newline followed it). A line's bytes never hold a newline, so any byte string round-trips.
//!
//! [`LineSplitter`] cuts a stream's output into such records as it arrives: complete lines at once, a line longer
//! than [`MAX_LINE`] in pieces of that size, and what is left when the stream ends as a partial line.

use skep_api::logs::{LogRecord, LogStream, MAX_LINE};

fn kind(stream: LogStream, partial: bool) -> u8 {
    match (stream, partial) {
        (LogStream::Stdout, false) => b'o',
        (LogStream::Stderr, false) => b'e',
        (LogStream::Stdout, true) => b'O',
        (LogStream::Stderr, true) => b'E',
    }
}

/// Appends a record to `out`. `line` must not contain `\n` (the splitter never passes one).
pub fn encode(time_ns: i64, stream: LogStream, partial: bool, line: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(time_ns.to_string().as_bytes());
    out.push(b' ');
    out.push(kind(stream, partial));
    out.push(b' ');
    out.extend_from_slice(line);
    out.push(b'\n');
}

/// Reads one record line (without its `\n`); `None` if it is not one.
pub fn parse(line: &[u8]) -> Option<LogRecord> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let time_ns: i64 = std::str::from_utf8(&line[..sp]).ok()?.parse().ok()?;
    let rest = &line[sp + 1..];
    let (&k, rest) = rest.split_first()?;
    let (stream, partial) = match k {
        b'o' => (LogStream::Stdout, false),
        b'e' => (LogStream::Stderr, false),
        b'O' => (LogStream::Stdout, true),
        b'E' => (LogStream::Stderr, true),
        _ => return None,
    };
    let (&b' ', bytes) = rest.split_first()? else { return None };
    Some(LogRecord { time_ns, stream, partial, line: bytes.to_vec() })
}

/// Cuts one stream's output into records.
pub struct LineSplitter {
    stream: LogStream,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter for `stream`.
    pub fn new(stream: LogStream) -> LineSplitter {
        LineSplitter { stream, pending: Vec::new() }
    }

    /// Takes `data` read at `time_ns`, appending the records it completes to `out`.
    pub fn push(&mut self, time_ns: i64, mut data: &[u8], out: &mut Vec<u8>) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&data[..nl]);
            self.emit_full(time_ns, out);
            encode(time_ns, self.stream, false, &self.pending, out);
            self.pending.clear();
            data = &data[nl + 1..];
        }
        self.pending.extend_from_slice(data);
        self.emit_full(time_ns, out);
    }

    /// Writes out whole [`MAX_LINE`] pieces of a long pending line, as partial records.
    fn emit_full(&mut self, time_ns: i64, out: &mut Vec<u8>) {
        while self.pending.len() > MAX_LINE {
            encode(time_ns, self.stream, true, &self.pending[..MAX_LINE], out);
            self.pending.drain(..MAX_LINE);
        }
    }

    /// The stream ended: what is pending becomes a partial record.
    pub fn finish(&mut self, time_ns: i64, out: &mut Vec<u8>) {
        if !self.pending.is_empty() {
            encode(time_ns, self.stream, true, &self.pending, out);
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(buf: &[u8]) -> Vec<LogRecord> {
        buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| parse(l).unwrap()).collect()
    }

    #[test]
    fn records_round_trip_any_bytes() {
        let mut out = Vec::new();
        encode(-5, LogStream::Stderr, true, b"a b \x00\xff", &mut out);
        encode(1_700_000_000_000_000_001, LogStream::Stdout, false, b"", &mut out);
        let r = records(&out);
        assert_eq!(r[0], LogRecord { time_ns: -5, stream: LogStream::Stderr, partial: true, line: b"a b \x00\xff".to_vec() });
        assert_eq!(r[1].line, b"");
        assert_eq!(r[1].stream, LogStream::Stdout);
        assert!(!r[1].partial);
        for bad in [&b""[..], b"12", b"12 x y", b"x o y", b"12 oy"] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn output_is_cut_into_lines_across_reads() {
        let mut s = LineSplitter::new(LogStream::Stdout);
        let mut out = Vec::new();
        s.push(1, b"hel", &mut out);
        assert!(out.is_empty());
        s.push(2, b"lo\nworld\n\nrest", &mut out);
        s.finish(3, &mut out);
        let r = records(&out);
        let lines: Vec<(&[u8], bool, i64)> = r.iter().map(|r| (&r.line[..], r.partial, r.time_ns)).collect();
        assert_eq!(lines, vec![(&b"hello"[..], false, 2), (b"world", false, 2), (b"", false, 2), (b"rest", true, 3)]);
    }

    #[test]
    fn long_lines_are_cut_at_the_limit() {
        let mut s = LineSplitter::new(LogStream::Stderr);
        let mut out = Vec::new();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        s.push(1, &long, &mut out);
        s.push(1, b"\n", &mut out);
        let r = records(&out);
        assert_eq!(r.iter().map(|r| (r.line.len(), r.partial)).collect::<Vec<_>>(), vec![(MAX_LINE, true), (MAX_LINE, true), (10, false)]);
    }
}
