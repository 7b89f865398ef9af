package tunnel

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/braidmux/braid/session"
)

// resetCode is the stream RESET code the tunnel uses when one end of a
// forwarded connection was reset or failed: the other end is reset too
// (a TCP RST), so an abort travels through the tunnel like one.
const resetCode = 0x101

// Buffers: a forwarded connection that is idle must not pin a large
// buffer per direction (1 000 idle connections would hold 128 MiB), so a
// direction reads into a small buffer while traffic is light and borrows
// a large one from a pool only while reads keep filling what they get.
const (
	smallBuf = 512
	largeBuf = 256 << 10
)

var largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// link is a forwarded connection whose stream is set up: what carry
// needs to join the two. The functions that set a connection up (rules,
// dialing, headers: deep stacks) return a link, and the connection's
// goroutine calls carry from a shallow frame of its own, so the stacks
// of the two goroutines an idle connection keeps can shrink to a few KiB
// (see "Memory" under Tunnel in BENCHMARKS.md).
type link struct {
	conn net.Conn
	st   *session.Stream
	// up counts bytes from the client side to the server side, down the
	// other way; connIsClient says which of them conn's reads are.
	up, down     *atomic.Uint64
	connIsClient bool
	first        func() error // see pipe
	failed       *atomic.Uint64
	done         func() // runs last: counters, limits
	log          *slog.Logger
	attrs        []any // identify the connection in the log lines
}

// carry joins the connection and its stream until both directions are
// done, counts and logs the outcome.
func (l *link) carry() {
	defer l.done()
	start := time.Now()
	l.log.Debug("connection opened", l.attrs...)
	var sent, received int64
	var err error
	if l.connIsClient {
		sent, received, err = pipe(l.conn, l.st, l.up, l.down, l.first)
	} else {
		sent, received, err = pipe(l.conn, l.st, l.down, l.up, l.first)
	}
	if err != nil {
		l.failed.Add(1)
		l.log.Warn("forward failed", append(l.attrs, "error", err)...)
		return
	}
	up, down := sent, received
	if !l.connIsClient {
		up, down = received, sent
	}
	l.log.Debug("connection closed", append(l.attrs, "bytes_up", up, "bytes_down", down, "duration", time.Since(start))...)
}

// pipe joins a forwarded TCP connection and its stream until both
// directions have ended, and closes both. A FIN on either side becomes a
// half-close on the other (CloseWrite); an error on either side — a TCP
// reset, a stream reset, a failed write — aborts both, the TCP side with
// a reset (SO_LINGER 0). toStream and fromStream count the bytes of each
// direction as they pass; pipe also returns this connection's own counts
// (sent: c to st; received: st to c). It returns once both directions
// are done; it runs one direction on the calling goroutine and one on a
// new one.
//
// If first is not nil it runs before anything is copied from the stream
// (it reads the peer's reply to the stream's header), while bytes
// already flow toward the stream: a new connection's first bytes do not
// wait a round trip. If first fails, the connection is aborted and pipe
// returns first's error.
func pipe(c net.Conn, st *session.Stream, toStream, fromStream *atomic.Uint64, first func() error) (sent, received int64, err error) {
	var once sync.Once
	aborted := false // written inside once, read after both directions
	abort := func() {
		once.Do(func() {
			aborted = true
			_ = st.Reset(resetCode)
			resetConn(c)
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if first != nil {
			if err = first(); err != nil {
				abort()
				return
			}
		}
		var cerr error
		if received, cerr = copyHalf(c, st, fromStream); cerr != nil {
			abort()
		}
	}()
	var cerr error
	if sent, cerr = copyHalf(st, c, toStream); cerr != nil {
		abort()
	}
	<-done
	// After a clean end both FINs are exchanged (ours may still be
	// queued): the session forgets the stream once ours is sent. Close
	// would add nothing but a StreamCloseTimeout timer that keeps the
	// stream's memory for minutes when our FIN is not out yet (measured:
	// 20 000 connections opened and closed left 21.6 MB of heap on the
	// server).
	if aborted {
		_ = st.Close()
	}
	_ = c.Close()
	return sent, received, err
}

// copyHalf copies src to dst until src ends, then half-closes dst. It
// returns the bytes copied and nil after a clean end (io.EOF), else the
// error.
func copyHalf(dst io.Writer, src io.Reader, count *atomic.Uint64) (total int64, _ error) {
	var small []byte
	var large *[]byte
	defer func() {
		if large != nil {
			largePool.Put(large)
		}
	}()
	useLarge := false
	for {
		var buf []byte
		if useLarge {
			if large == nil {
				large = largePool.Get().(*[]byte)
			}
			buf = *large
		} else {
			if large != nil {
				largePool.Put(large)
				large = nil
			}
			if small == nil {
				small = make([]byte, smallBuf)
			}
			buf = small
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			count.Add(uint64(n))
			total += int64(n)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if hc, ok := dst.(interface{ CloseWrite() error }); ok {
					if cerr := hc.CloseWrite(); cerr != nil {
						return total, cerr
					}
				}
				return total, nil
			}
			return total, err
		}
		// Stay large while reads fill at least half the buffer.
		useLarge = n >= len(buf)/2 && (useLarge || n == len(buf))
	}
}
