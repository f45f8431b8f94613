//! Serving one client connection: pgwire's message loop over a socket that
//! sends replies when the router is about to wait for the client.
//!
//! pgwire flushes after BindComplete, CommandComplete and ReadyForQuery, so a
//! prepared statement cost four `sendto` calls (strace under pgbench
//! w_read: 36k sends for 9k reads). PostgreSQL buffers a reply and flushes
//! when it would block reading the next message; [`Corked`] does the same,
//! so one query is one send.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::ErrorInfo;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};
use tokio_util::sync::CancellationToken;

/// Buffered reply bytes beyond which writes go out without waiting.
const HIGH_WATER: usize = 64 * 1024;

/// A client must finish its startup (and authentication) within this time.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A stream whose writes wait in a buffer until a read would block (or the
/// buffer is large, or the stream shuts down).
pub struct Corked<S> {
    inner: S,
    buf: Vec<u8>,
    sent: usize,
}

impl<S> Corked<S> {
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl Corked<pgwire::tokio::server::MaybeTls> {
    /// The client's address, for log lines.
    fn peer(&self) -> String {
        match &self.inner {
            pgwire::tokio::server::MaybeTls::Plain(s) => s
                .peer_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string()),
            _ => "?".to_owned(),
        }
    }
}

impl<S> Corked<S> {
    /// Rewrites the status of a ReadyForQuery that ends the buffered reply
    /// (pgwire wrote it; the bytes have not been sent yet, since a reply
    /// waits here until the router would block reading).
    pub fn patch_ready_for_query(&mut self, status: u8) {
        let n = self.buf.len();
        if n >= 6 + self.sent && self.buf[n - 6..n - 1] == [b'Z', 0, 0, 0, 5] {
            self.buf[n - 1] = status;
        }
    }
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    pub fn new(inner: S) -> Corked<S> {
        Corked {
            inner,
            buf: Vec::new(),
            sent: 0,
        }
    }

    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            return Poll::Ready(r);
        }
        // Nothing to read: the client is waiting for what we have.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Pending
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    /// Deferred to the next read that would block (see the module docs).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// The session's own view of its transaction (see [`serve_client`]).
pub trait SessionStatus {
    /// `None` while the session is busy (a statement still running).
    fn transaction_status(&self) -> Option<pgwire::messages::response::TransactionStatus>;
}

/// Serves one client until it leaves or a fatal error ends the session.
/// The loop is pgwire's own (`process_socket`), over a [`Corked`] socket.
/// When `shutdown` fires the session ends at its next wait for the client
/// (a statement in progress finishes first) with FATAL 57P01, as in
/// PostgreSQL.
pub async fn serve_client<H: PgWireServerHandlers + SessionStatus>(
    socket: TcpStream,
    handlers: H,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let startup = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup);
    let negotiated = tokio::select! {
        _ = &mut startup => return Ok(()),
        s = negotiate_tls(socket, None) => s?,
    };
    // A client asking for direct TLS, which this router does not offer.
    let Some(plain) = negotiated else {
        return Ok(());
    };
    let old = plain.into_parts();
    let mut parts = FramedParts::new(Corked::new(old.io), old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);

    let startup_handler = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        // pgwire's decoders trust the counts inside a message (a Bind that
        // announces more parameter formats than it carries panics in
        // `bytes`; found by the router_messages fuzz target). A panic there
        // ends this connection only, with a log line, like any bad message.
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = AssertUnwindSafe(socket.next()).catch_unwind();
        let msg = if starting {
            tokio::select! {
                _ = &mut startup => Ok(None),
                _ = shutdown.cancelled() => Ok(None),
                m = next => m,
            }
        } else {
            tokio::select! {
                m = next => m,
                _ = shutdown.cancelled() => {
                    let err = ErrorInfo::new(
                        "FATAL".to_owned(),
                        "57P01".to_owned(),
                        "terminating connection due to administrator command (the router is shutting down)".to_owned(),
                    );
                    socket.send(PgWireBackendMessage::ErrorResponse(err.into())).await?;
                    Ok(None)
                }
            }
        };
        let msg = match msg {
            Ok(m) => m,
            Err(_) => {
                tracing::warn!(peer = %socket.get_ref().peer(), "malformed message from client; connection closed");
                metrics::counter!("tributary_router_malformed_messages_total").increment(1);
                return Ok(());
            }
        };
        let Some(Ok(mut msg)) = msg else { break };
        if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        // PostgreSQL reads a max_rows of 0 or less as "all rows"; pgwire casts
        // it to usize and allocates that many (a capacity-overflow panic on
        // -1; found by the router_messages fuzz target).
        if let PgWireFrontendMessage::Execute(e) = &mut msg
            && e.max_rows < 0
        {
            e.max_rows = 0;
        }
        let is_extended = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => msg.is_extended_query(),
        };
        let is_cancel = matches!(msg, PgWireFrontendMessage::CancelRequest(_));
        let answers_ready = matches!(
            msg,
            PgWireFrontendMessage::Query(_)
                | PgWireFrontendMessage::Sync(_)
                | PgWireFrontendMessage::CopyDone(_)
                | PgWireFrontendMessage::CopyFail(_)
        );
        let result = process_message(
            msg,
            &mut socket,
            startup_handler.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut e) = result {
            errors.on_error(&socket, &mut e);
            let fatal = e.is_fatal();
            process_error(&mut socket, e, is_extended).await?;
            if fatal {
                break;
            }
        }
        // pgwire derives the transaction status from the responses (an
        // error inside a block means "failed"); the session knows better: a
        // failed COMMIT ends the transaction, as in PostgreSQL.
        if let Some(status) = handlers.transaction_status()
            && matches!(socket.state(), PgWireConnectionState::ReadyForQuery)
        {
            socket.set_transaction_status(status);
            if answers_ready {
                socket.get_mut().patch_ready_for_query(status as u8);
            }
        }
        if is_cancel {
            break;
        }
    }
    // Whatever is still buffered (a FATAL error, say) goes out before closing.
    match socket.close().await {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
    }
}

/// Answers a client the router will not serve (too many connections) the
/// way PostgreSQL does: after its startup message, a FATAL error.
pub async fn refuse(socket: TcpStream, code: &str, message: String) -> io::Result<()> {
    let work = async {
        let Some(mut socket) = negotiate_tls::<()>(socket, None).await? else {
            return Ok(());
        };
        // The startup message (or anything) first, so the client reads the error.
        let _ = socket.next().await;
        let err = ErrorInfo::new("FATAL".to_owned(), code.to_owned(), message);
        socket
            .send(PgWireBackendMessage::ErrorResponse(err.into()))
            .await?;
        socket.close().await
    };
    // A client that never sends its startup message is not waited on long.
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn writes_wait_for_a_blocking_read_then_go_out_together() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut corked = Corked::new(server);
        let mut client = client;
        corked.write_all(b"one").await.expect("write");
        corked.flush().await.expect("flush");
        corked.write_all(b"two").await.expect("write");
        // Nothing has reached the client yet.
        let mut probe = [0u8; 16];
        let early = tokio::time::timeout(Duration::from_millis(50), client.read(&mut probe)).await;
        assert!(early.is_err(), "bytes went out before a read blocked");
        // The server now waits for the client: the buffer goes out in one piece.
        let mut got = [0u8; 1];
        let read = tokio::spawn(async move {
            corked.read_exact(&mut got).await.expect("read");
            (corked, got)
        });
        let mut out = [0u8; 6];
        client.read_exact(&mut out).await.expect("read replies");
        assert_eq!(&out, b"onetwo");
        client.write_all(b"x").await.expect("client write");
        let (_corked, got) = read.await.expect("join");
        assert_eq!(&got, b"x");
    }

    #[tokio::test]
    async fn shutdown_and_large_writes_are_not_held_back() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut corked = Corked::new(server);
        let big = vec![7u8; HIGH_WATER + 10];
        corked.write_all(&big).await.expect("write");
        corked.write_all(b"tail").await.expect("write");
        let mut first = vec![0u8; HIGH_WATER + 10];
        client
            .read_exact(&mut first)
            .await
            .expect("big write went out");
        corked.shutdown().await.expect("shutdown");
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"tail");
    }
}
