//! Connections on which HTTP/2 batches small messages into one write.
//!
//! h2 copies a DATA frame's payload into its write buffer only below a threshold: 256 bytes on a
//! connection that offers vectored writes, as a TCP stream does, and 1024 bytes on one that does not.
//! A larger payload is kept aside and written from where it lies, and the buffer must then be written out
//! before the next frame can go in. A typical call of this system carries 300 to 1000 bytes, so every
//! message cost a write of its own: a response its DATA and then its trailers, and each of the streams a
//! busy connection multiplexes one more. On loopback a write costs the sender the receiver's network
//! work too; the writes were a quarter of the gateway's CPU.
//!
//! [`BatchedWrites`] is a connection that says it has no vectored writes, so h2 copies payloads below
//! 1024 bytes and a response, its trailers, and the frames of the other streams ready at the same time
//! leave in one write. Payloads of 1024 bytes or more cost two writes instead of one (the buffered head,
//! then the payload): the messages on this system's hot path are smaller. Over TLS the TLS stream decides
//! for itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tower::{BoxError, Service, ServiceExt as _};

pin_project! {
    /// `inner`, saying that it has no vectored writes: see the module docs.
    #[derive(Debug)]
    pub struct BatchedWrites<T> {
        #[pin]
        inner: T,
    }
}

impl<T> BatchedWrites<T> {
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead> AsyncRead for BatchedWrites<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for BatchedWrites<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

impl Connected for BatchedWrites<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A client connection of a channel made with [`connector`].
pub type ClientIo = TokioIo<BatchedWrites<TcpStream>>;

/// Connects a tonic channel ([`tonic::transport::Endpoint::connect_with_connector_lazy`]) over TCP as
/// tonic's own connector does (TCP_NODELAY; the endpoint's connect timeout and TLS still apply), with
/// [`BatchedWrites`] connections.
pub fn connector()
-> impl Service<http::Uri, Response = ClientIo, Error = BoxError, Future: Send + 'static> + Clone + Send + 'static
{
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.map_response(|io: TokioIo<TcpStream>| TokioIo::new(BatchedWrites::new(io.into_inner())))
        .map_err(BoxError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn bytes_pass_both_ways_and_writes_are_not_vectored() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut stream = BatchedWrites::new(TcpStream::connect(addr).await.unwrap());
            assert!(!stream.is_write_vectored());
            stream.write_all(b"ping").await.unwrap();
            let mut answer = [0u8; 4];
            stream.read_exact(&mut answer).await.unwrap();
            answer
        });
        let (accepted, _) = listener.accept().await.unwrap();
        let mut server = BatchedWrites::new(accepted);
        assert_eq!(
            server.connect_info().remote_addr(),
            server.get_ref().peer_addr().ok()
        );
        let mut question = [0u8; 4];
        server.read_exact(&mut question).await.unwrap();
        assert_eq!(&question, b"ping");
        server.write_all(b"pong").await.unwrap();
        assert_eq!(&client.await.unwrap(), b"pong");
    }
}
