// Package yamux is a drop-in replacement for github.com/hashicorp/yamux
// (v0.1.x) that runs on braid: the same names and the same behaviour,
// so a yamux program switches by changing its import path,
//
//	import "github.com/hashicorp/yamux"     // before
//	import "github.com/braidmux/braid/yamux" // after
//
// and a server built with it serves braid clients and unmodified yamux
// clients on the same port, so a fleet can migrate one side at a time.
//
// # What you get
//
// Config (yamux's fields, defaults and VerifyConfig), Server and Client
// taking any io.ReadWriteCloser and returning at once, Session (Open,
// OpenStream, Accept, AcceptStream, AcceptStreamWithContext, Close,
// GoAway, Ping, NumStreams, IsClosed, CloseChan, Addr, LocalAddr,
// RemoteAddr), Stream (a net.Conn whose Close is yamux's half-close,
// plus StreamID, Session, Shrink) and yamux's error variables, returned
// where yamux returns them. New code that does not need yamux's API
// should use github.com/braidmux/braid/session directly; see
// docs/migrating-from-yamux.md.
//
// # Two wire protocols
//
// A Session speaks braid (package session underneath) or yamux's wire
// protocol (github.com/hashicorp/yamux itself underneath):
//
//   - Client speaks braid by default. With Config.Protocol set to
//     ProtocolYamux it speaks yamux, to talk to a hashicorp/yamux
//     server.
//   - Server (with the default ProtocolAuto) looks at the first byte the
//     peer sends. Every yamux frame starts with the version byte 0x00;
//     every braid session starts with the varint length of its HELLO
//     frame, which is never 0 (SPEC.md §2.1). So 0x00 means yamux, any
//     other byte braid (a peer speaking something else then fails
//     braid's handshake). On TCP and Unix connections the byte is peeked
//     (MSG_PEEK), not consumed, so the connection reaches braid
//     unwrapped; elsewhere it is read and replayed.
//
// Detection has one limit: a yamux client that sends nothing and waits
// for the server to open the first stream. Such a client sends its first
// byte only with its first keepalive PING (after KeepAliveInterval, 30 s
// by default). A braid client always sends its HELLO at once and gives
// up after its HandshakeTimeout, so on a net.Conn the server waits
// HandshakeTimeout (10 s by default) for the first byte and then decides
// the silent peer speaks yamux: the server's Open calls wait those 10 s,
// then proceed over yamux. On a transport without read deadlines (a
// plain io.ReadWriteCloser) the server waits for the first byte without
// a bound, so it serves such a client at its first keepalive PING (30 s
// by default; never if the client disabled keepalives). Set
// Config.Protocol = ProtocolYamux on the server if its clients are all
// of this kind, or ProtocolBraid to refuse yamux clients.
//
// # Starting in the background
//
// Server and Client return at once, as yamux's do: detection and braid's
// HELLO exchange run in the session's own goroutine, so an accept loop
//
//	for {
//		conn, _ := ln.Accept()
//		sess, _ := yamux.Server(conn, nil)
//		go serve(sess)
//	}
//
// is never held up by a client that connects and sends nothing. The
// first Open, OpenStream, Accept, AcceptStream or GoAway waits for the
// start; if it fails (handshake error, HandshakeTimeout), they return
// its error. Session.Close during the start abandons it.
//
// # What differs from hashicorp/yamux on braid sessions
//
//   - Deadline errors are ErrTimeout, which also satisfies
//     errors.Is(err, os.ErrDeadlineExceeded) (yamux's does not), and a
//     Write past its deadline fails even if the window has room.
//   - Stream Reads and Writes on a session that has ended return
//     ErrSessionShutdown, not io.EOF: a cut connection does not look
//     like a clean end of stream. Accept returns ErrSessionShutdown (or
//     ErrKeepAliveTimeout) rather than the connection's error.
//   - StreamOpenTimeout fails the one OpenStream that waited too long
//     (ErrTimeout) instead of closing the session; OpenStreamWithContext
//     is an addition, to give up earlier.
//   - GoAway also stops this side opening streams, and the session
//     closes once its last stream has finished.
//   - Keepalive: a PING unanswered for ConnectionWriteTimeout ends the
//     session, as in yamux, but any frame from the peer counts as an
//     answer.
//   - Log lines come from braid: rare events only (protocol errors,
//     keepalive timeouts), never per frame.
//
// # Transports that are not a net.Conn
//
// Server and Client accept any io.ReadWriteCloser (a pipe, stdio, an SSH
// channel). One that is not a net.Conn is wrapped in a net.Conn whose
// deadline methods fail, so braid reads it from its reader goroutine
// only; HandshakeTimeout is enforced by closing the transport,
// ConnectionWriteTimeout is not enforced, and Close gives a stuck write
// 2 s before closing the transport. Addresses come from the transport's
// LocalAddr and RemoteAddr methods if it has them, else they are *Addr
// ("yamux:local", "yamux:remote", as in yamux).
//
// # Concurrency
//
// All methods of Session and Stream are safe for concurrent use by
// multiple goroutines. Each session runs one goroutine of its own (start,
// then wait for the end) besides those of the braid or yamux session
// underneath; all exit by the time Close returns.
package yamux
