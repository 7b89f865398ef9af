// Package session is braid's public API: a Session multiplexes many
// reliable, ordered byte streams over one net.Conn (TCP, TLS, a pipe).
//
// One side calls Client, the other Server, each on its end of a
// connection. Either side may then open streams (OpenStream, or the
// yamux-compatible Open) and accept the peer's (AcceptStream, Accept). A
// *Stream is a net.Conn; a *Session is a net.Listener, so it can be handed
// to http.Server.Serve or grpc.Server.Serve as is.
//
// Every session runs exactly two goroutines, a reader and a writer, which
// exit when the session closes (plus timer callbacks: keepalive, deadlines,
// and handing an idle connection to the reader). Writes are
// zero-copy: Stream.Write queues the caller's slice for the write
// scheduler, which sends it with vectored writes — from the calling
// goroutine itself when the connection is idle, else from the writer —
// and returns once the bytes are on the connection. Reading works the
// same way round: a goroutine that blocks waiting for the peer (a Read
// with no data, a Write with no flow-control credit) reads and applies
// frames from the connection itself when no other goroutine is, so the
// goroutine the kernel wakes is the one that needs the frame, as with a
// plain TCP connection; the reader goroutine reads only while nobody else
// waits. Reads copy at most once: a DATA payload for a stream whose Read
// is waiting goes from the socket straight into the Read's buffer;
// otherwise it is kept in the buffer it was read into until a Read copies
// it out. A Read or Write blocked reading the connection still returns at
// once when its deadline passes or its stream is closed (the session
// moves the connection's read deadline to interrupt it, so the
// connection must support read deadlines for this; one that does not is
// read by the reader goroutine alone). Received data is
// bounded by flow-control windows that tune themselves to the path's
// bandwidth-delay product (for paths with a round trip of 500 µs or
// more), and by a session-wide window (Config.MaxSessionWindow) that
// bounds the memory all streams of a session can hold.
//
// All methods of Session and Stream are safe for concurrent use by
// multiple goroutines, as net.Conn and net.Listener require.
//
// Errors: calls on a closed session fail with errors that satisfy
// errors.Is(err, net.ErrClosed); a stream reset by either side fails with
// a *StreamError carrying the code; deadline errors satisfy
// errors.Is(err, os.ErrDeadlineExceeded) and report Timeout() == true.
//
// The wire protocol is specified in SPEC.md at the repository root.
package session
