//! Request bodies read ahead, so a unary call leaves in as few HTTP/2 frames and writes as it can.
//!
//! tonic streams every request body, a unary call's too: its one message is encoded when the connection
//! first polls the body, and the body learns that it has ended only when polled again. hyper therefore
//! sends the message in a DATA frame and then an empty DATA frame that ends the stream, and the
//! connection task, woken for each, often writes HEADERS, DATA and the end of the stream with three
//! system calls. On loopback a write costs the sender the receiver's network work as well, so that was
//! two of the ten writes a QuotePrice made.
//!
//! [`ReadAheadLayer`] polls the body once before the call is sent, with a waker that does nothing. What
//! is ready then (a unary call's message, always) is kept and replayed; a body that is not ready at once
//! (a client stream) continues where the read stopped. The replayed body says that it has ended as soon
//! as its last frame is taken, so hyper sets END_STREAM on the message's own DATA frame.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use http_body::{Body as _, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

/// The most frames read ahead of a call: a unary call has one.
const MAX_FRAMES: usize = 4;

/// Reads each request body ahead of the call: see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadAheadLayer;

impl<S> Layer<S> for ReadAheadLayer {
    type Service = ReadAhead<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadAhead { inner }
    }
}

/// The service [`ReadAheadLayer`] wraps around a channel.
#[derive(Debug, Clone)]
pub struct ReadAhead<S> {
    inner: S,
}

impl<S> Service<http::Request<Body>> for ReadAhead<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.inner.call(request.map(read_ahead))
    }
}

/// `body` with what it has ready now taken out of it and put in front of what remains.
fn read_ahead(mut body: Body) -> Body {
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames = VecDeque::new();
    let mut error = None;
    let mut rest = None;
    loop {
        if frames.len() == MAX_FRAMES {
            rest = Some(body);
            break;
        }
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => frames.push_back(frame),
            Poll::Ready(Some(Err(status))) => {
                error = Some(status);
                break;
            }
            Poll::Ready(None) => break,
            Poll::Pending => {
                rest = Some(body);
                break;
            }
        }
    }
    Body::new(ReadBody { frames, error, rest })
}

/// The frames read ahead, then the error the read ended with, then the rest of the body.
struct ReadBody {
    frames: VecDeque<Frame<bytes::Bytes>>,
    error: Option<Status>,
    rest: Option<Body>,
}

impl http_body::Body for ReadBody {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(status) = self.error.take() {
            return Poll::Ready(Some(Err(status)));
        }
        match self.rest.as_mut() {
            Some(rest) => Pin::new(rest).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let ahead = self
            .frames
            .iter()
            .filter_map(Frame::data_ref)
            .map(|data| data.len() as u64)
            .sum::<u64>();
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), http_body::Body::size_hint);
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + ahead);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, StreamBody};

    fn frames_of(body: Body) -> Vec<Result<Frame<Bytes>, Status>> {
        futures::executor::block_on(async move {
            let mut body = body;
            let mut out = Vec::new();
            while let Some(frame) = body.frame().await {
                out.push(frame);
            }
            out
        })
    }

    #[test]
    fn a_ready_message_ends_the_stream_with_its_own_frame() {
        let body = read_ahead(Body::new(StreamBody::new(futures::stream::iter([
            Ok::<_, Status>(Frame::data(Bytes::from_static(b"message"))),
        ]))));
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(7));
        let mut body = body;
        let frame = futures::executor::block_on(body.frame()).unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), Bytes::from_static(b"message"));
        // What hyper asks right after the DATA frame: nothing follows, so END_STREAM goes on it.
        assert!(body.is_end_stream());
        assert!(futures::executor::block_on(body.frame()).is_none());
    }

    #[test]
    fn a_body_not_ready_at_once_continues_where_the_read_stopped() {
        let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Frame<Bytes>, Status>>();
        sender
            .unbounded_send(Ok(Frame::data(Bytes::from_static(b"one"))))
            .unwrap();
        let body = read_ahead(Body::new(StreamBody::new(receiver)));
        assert!(!body.is_end_stream());
        sender
            .unbounded_send(Ok(Frame::data(Bytes::from_static(b"two"))))
            .unwrap();
        drop(sender);
        let data: Vec<Bytes> = frames_of(body)
            .into_iter()
            .map(|frame| frame.unwrap().into_data().unwrap())
            .collect();
        assert_eq!(data, [Bytes::from_static(b"one"), Bytes::from_static(b"two")]);
    }

    #[test]
    fn an_error_while_reading_ahead_comes_after_the_frames_before_it() {
        let body = read_ahead(Body::new(StreamBody::new(futures::stream::iter([
            Ok(Frame::data(Bytes::from_static(b"one"))),
            Err(Status::resource_exhausted("message too large")),
            Ok(Frame::data(Bytes::from_static(b"never"))),
        ]))));
        let frames = frames_of(body);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].as_ref().unwrap().is_data());
        let status = frames[1].as_ref().unwrap_err();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn a_long_ready_stream_is_read_ahead_only_in_part() {
        let all: Vec<Result<Frame<Bytes>, Status>> =
            (0..10u8).map(|i| Ok(Frame::data(Bytes::from(vec![i])))).collect();
        let body = read_ahead(Body::new(StreamBody::new(futures::stream::iter(all))));
        let data: Vec<u8> = frames_of(body)
            .into_iter()
            .map(|frame| frame.unwrap().into_data().unwrap()[0])
            .collect();
        assert_eq!(data, (0..10u8).collect::<Vec<_>>());
    }
}
