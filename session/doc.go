// Package session is braid's public API: a Session multiplexes many
// reliable, ordered byte streams over one net.Conn (TCP, TLS, a Unix
// socket, a pipe, a WebSocket — anything that keeps net.Conn's contract).
//
// One side calls Client, the other Server, each on its end of a
// connection. Either side may then open streams (OpenStream, or the
// yamux-compatible Open) and accept the peer's (AcceptStream, Accept). A
// *Stream is a net.Conn; a *Session is a net.Listener, so it can be handed
// to http.Server.Serve or grpc.Server.Serve as is.
//
// A session that must survive its connection breaking is made with Dial
// on the client side (it takes a dial function, not a connection) and a
// Listener on the server side: when the connection drops, the client
// dials again and resumes the session, and every stream carries on
// where it stopped, for up to Config.ResumeTimeout (SPEC.md §16).
//
// All methods of Session and Stream are safe for concurrent use by
// multiple goroutines, as net.Conn and net.Listener require.
//
// Errors: calls on a closed session fail with errors that satisfy
// errors.Is(err, net.ErrClosed); a stream reset by either side fails with
// a *StreamError carrying the code; deadline errors satisfy
// errors.Is(err, os.ErrDeadlineExceeded) and report Timeout() == true.
//
// Received data is bounded by flow-control windows that tune themselves
// to the path's bandwidth-delay product (counting a round trip as at
// least 1 ms), and by a session-wide window (Config.MaxSessionWindow)
// that bounds the memory all streams of a session can hold.
//
// The wire protocol is specified in SPEC.md at the repository root.
//
// # Design
//
// These notes are for whoever changes this package; the file and type
// names below are where to look.
//
// The connection seam (seam.go). Type seam is the only code that touches
// the net.Conn. The reader goroutine reads it; writes come from whoever
// holds Session.connBusy, fed by the write pipeline for large Writes:
//
//   - The reader goroutine (Session.readLoop) is the only reader. It reads
//     a frame, takes the session lock, applies the frame (handle.go), and
//     releases the lock. DATA payloads of 2 KiB or more are read straight
//     into a pooled buffer that the stream keeps; smaller ones are copied
//     out of the reader's buffer. Application goroutines never read the
//     connection: a Read waits on its stream's condition until the reader
//     has put data in the stream's buffer, or a deadline timer, Close or
//     the session's end wakes it. So a Read returns at its deadline
//     whatever the connection does, and no read deadline is ever set on
//     the connection (some conns, WebSocket ones among them, close
//     themselves when one fires). The reader never writes (a reader
//     blocked writing to a peer that is itself blocked writing would stall
//     both sides): frames that need an answer (PING, a refused SYN) queue
//     it.
//   - Whoever holds Session.connBusy writes: a Write that finds the
//     connection idle writes its own batch (no hand-off on the latency
//     path), otherwise the writer goroutine (Session.writeLoop) does. A
//     batch is whatever the scheduler (package mux) chooses: control
//     frames first, then DATA by deficit round-robin, in one vectored
//     write. Small Writes are zero-copy: a Write's bytes stay in the
//     caller's slice until they are on the connection, and Write returns
//     then.
//   - A Write of 16 KiB or more (handOffMin) goes through the write
//     pipeline instead: a filler goroutine (fillLoop) copies batches into
//     pooled chunks, and the Write returns once its bytes are copied;
//     the writer goroutine writes the copies, all that wait (up to 512
//     KiB, pendingMax) in one vectored write. One connection's sender
//     is limited by its write calls, so fewer, larger ones carry more:
//     one stream of 128 KiB Writes moved 0.80–0.90 of one TCP
//     connection's bytes without the pipeline and 0.95–1.09 with it
//     (BENCHMARKS.md, medians of batches of 4 runs). A
//     resumable session copies every batch this way (below); a plain one
//     runs the pipeline only while a large Write waits (resumer.bulk,
//     startPipeline), and keeps no chunks once it is idle.
//
// Resumable sessions (resume.go, replay.go, listener.go). A session made
// by Dial or a Listener survives its connection breaking, and the
// connection is swapped behind the seam and nowhere else. The unit of
// resumption is the session's frame sequence, not a stream: every batch
// is copied to a replay buffer. Writes there go in two stages that run
// at once: a filler goroutine (fillLoop, holding resumer.filling) takes a
// batch from the scheduler and copies it into the replay buffer, which
// releases its Writes, and the writer goroutine (holding connBusy)
// writes the copies from there, so one batch is copied while the one
// before it is written; a small Write that finds everything idle writes
// its own batch and copies it after (writeCopyUnlocking). The peer's
// reader counts the bytes of the frames it applied and acknowledges
// them (ACK frames), and a resume resends what the other
// side did not receive. So every frame arrives exactly once and in order,
// and streams, the scheduler and flow control never learn that the
// connection changed. When the connection fails (a read or write error,
// or keepalive), connLost detaches the session: the old conn is closed,
// the reader exits, and the filler goes on filling the replay buffer
// (within credit and the buffer's capacity), so Writes behave as over a
// slow link; a client's redialLoop dials again. attachUnlocking installs
// the new conn once the resume handshake's proof verified: it marks the
// connection busy against writers (resumer.swapping), waits for the old
// reader to exit (so the count of bytes received is final) and for
// connBusy and filling to be free, starts a reader on the new seam,
// writes the replay (copies not yet written included), and releases the
// connection. ResumeTimeout ends a session that stays detached.
//
// Stream states (stream.go, handle.go). A stream's lifecycle is
// Stream.state, SPEC.md §5.3's state machine: stateOpen,
// stateHalfClosedLocal (FIN sent), stateHalfClosedRemote (FIN received),
// stateClosed (both, or a RESET either way). The idle state has no Stream.
// Only setState, finSent, finReceived and reset change it; entering
// stateClosed takes the stream out of the session's table (forget), which
// also stops its StreamCloseTimeout timer. Received frames are applied by
// handleStreamFrame, a switch over SPEC.md's table 2: the frame's row
// (frameKind: SYN, DATA, ACK, WINDOW_UPDATE, RESET) and the receiver's
// column for the stream ID (column: idle, open, half-closed local or
// remote, closed — IDs without a Stream are idle or closed). Each case is
// one cell of the table, and TestStateTable walks them all through a raw
// peer. A stream's two directions keep their own fields: sendHalf (the
// scheduler's mux.Stream, which holds the queued data and the send
// credit, and the Write turn) and recvHalf (the buffered bytes and the
// receive window). What only busy streams need (their condition
// variable, deadlines, close timer) is allocated on first use (waits), so
// an idle stream costs about 210 bytes.
//
// One owner per fact. Send credit per stream lives in the scheduler's
// mux.Stream only (AddCredit refuses a WINDOW_UPDATE past 2^31−1;
// TakeCredit and ReturnCredit prepay compressed frames); the session's
// send credit in Session.sendWin; receive accounting in the
// flowcontrol.RecvWindow of each stream and of the session. mux carries
// the owning *Stream as a typed field (mux.Stream[*Stream].Owner).
//
// Locks. One mutex, Session.mu, guards all of a session's state and its
// streams'. The rules:
//
//   - An unexported method is called with s.mu held and keeps it held
//     throughout, unless its name ends in Unlocking: those (writes to the
//     connection, waits on a condition, compression) release s.mu and take
//     it again before they return, so their callers must not keep
//     pointers or facts across the call without checking them again.
//   - Goroutine bodies (readLoop, writeLoop), timer callbacks (keepalive,
//     closeTimedOut, wakeAll) and exported methods take s.mu themselves.
//   - I/O happens outside the lock: decide under it, release it for the
//     read or write, take it again to apply the result and notify.
//   - Built with -tags braiddebug, the methods that must run under s.mu
//     check it (assertLocked); CI runs the tests that way.
//
// Latency under load. The reader drains the connection as fast as frames
// arrive, so a small message is never left in the socket behind bulk data
// that a slow application has not read yet: that data waits in its own
// stream's buffer, bounded by its window. What still sits in socket
// buffers ahead of a message is the bulk data in flight, up to a window.
// So while another stream receives messages (a run of at least two
// payloads under 2 KiB, the last within 2 ms), a bulk stream's credit is
// held to 16 KiB on short paths (RTT under 500 µs; contended in
// stream.go): a 64-byte echo beside a saturating stream then takes about
// 40 µs on loopback instead of 130 µs, at the cost of the bulk stream's
// throughput while the messages last (BENCHMARKS.md has the figures).
// The reader also yields its processor after a frame that woke a
// goroutine waiting for a message.
//
// Windows. A stream's receive window doubles (paid from the session's
// budget) when the application drained it within four RTTs while keeping
// up. The RTT counted is at least 1 ms (minTuneRTT): on a short path
// what delays a window update is scheduling, not the path. A stream held
// to 16 KiB for another's messages also shrinks back to its initial
// window, and no window grows until 100 ms after the last hold
// (contendSettle), so a pause in the messages does not let a grown
// window's worth of bulk data in ahead of the next one.
//
// Closing. A flushed close (Close, or the end of a GOAWAY exchange)
// writes the last frames, half-closes the connection where it can
// (CloseWrite) and reads on until the peer closes too, briefly: closing
// at once would make TCP answer the peer's late frames with a reset,
// which can discard data the peer had not read yet (seam.lingerClose).
//
// Write deadlines. A small Write without a deadline sends the caller's
// bytes without copying them, often from the calling goroutine (a large
// one goes through the write pipeline). One with a deadline sends a copy
// through the writer goroutine, so that it can return at its deadline
// even while the connection write holding its bytes is stuck
// (transmitUnlocking).
package session
