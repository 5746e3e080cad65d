//! The little RESP the kit's own commands need: a request written as an array of bulk strings, and
//! [`Reply`] read back.

use std::io::{self, BufRead, Write};
use std::net::TcpStream;

/// A RESP reply, as much of it as tests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub(super) fn expect_status(self, want: &str) -> io::Result<()> {
        match self {
            Reply::Status(s) if s == want => Ok(()),
            other => Err(io::Error::other(format!("expected +{want}, got {other:?}"))),
        }
    }

    /// The reply as text (a status or a bulk string).
    pub fn into_text(self) -> io::Result<String> {
        match self {
            Reply::Status(s) => Ok(s),
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(&b).into_owned()),
            other => Err(io::Error::other(format!("expected text, got {other:?}"))),
        }
    }
}

pub(super) fn send(stream: &mut TcpStream, args: &[&[u8]]) -> io::Result<()> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        buf.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        buf.extend_from_slice(arg);
        buf.extend_from_slice(b"\r\n");
    }
    stream.write_all(&buf)
}

pub(super) fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "truncated RESP reply",
        ));
    }
    let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    let number = || {
        text.parse::<i64>()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    Ok(match line[0] {
        b'+' => Reply::Status(text),
        b'-' => Reply::Error(text),
        b':' => Reply::Integer(number()?),
        b'$' => match usize::try_from(number()?) {
            Ok(len) => {
                let mut data = vec![0; len + 2];
                reader.read_exact(&mut data)?;
                data.truncate(len);
                Reply::Bulk(Some(data))
            }
            Err(_) => Reply::Bulk(None),
        },
        b'*' => match usize::try_from(number()?) {
            Ok(len) => Reply::Array(Some(
                (0..len).map(|_| read_reply(reader)).collect::<io::Result<_>>()?,
            )),
            Err(_) => Reply::Array(None),
        },
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad RESP type {other}"),
            ));
        }
    })
}
