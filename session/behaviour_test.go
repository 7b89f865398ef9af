package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

// writeAbortBug is a known bug. Tests whose only failure is this one skip
// with it once all their other checks have passed, so the lead can find
// them (grep "BUG:") and remove the skip with the fix; TestAbortedWrite
// shows it alone.
const writeAbortBug = "regression: a Write blocked on flow control reports all of p as sent (n == len(p), usually with err == nil) when its stream is reset or its session ends, though most of p was never sent " +
	"(abort/sessionClosed drop the queued bytes with sched.Remove; Write's wait loop then ends without checking writeErr, and cannot subtract what was dropped)"

func TestOpenStreamAnnouncesAtOnce(t *testing.T) {
	c, s := sessionPair(t, nil, nil)

	// The peer learns of the stream before a byte is written on it.
	cst := open(t, c)
	sst := accept(t, s)
	if cst.ID() != sst.ID() || cst.ID()%2 != 1 {
		t.Fatalf("client opened %d, server accepted %d; want the same odd ID", cst.ID(), sst.ID())
	}

	// And the other way round: server-opened streams are even.
	sst2 := open(t, s)
	cst2 := accept(t, c)
	if sst2.ID() != cst2.ID() || sst2.ID()%2 != 0 {
		t.Fatalf("server opened %d, client accepted %d; want the same even ID", sst2.ID(), cst2.ID())
	}

	// Data written right after OpenStream arrives, without waiting for
	// any acknowledgement.
	cst3 := open(t, c)
	msg := []byte("written right after OpenStream")
	if _, err := cst3.Write(msg); err != nil {
		t.Fatal(err)
	}
	sst3 := accept(t, s)
	if got := readN(t, sst3, len(msg)); !bytes.Equal(got, msg) {
		t.Fatalf("got %q, want %q", got, msg)
	}
}

func TestOpenAcceptContext(t *testing.T) {
	c, s := sessionPair(t, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.OpenStream(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenStream(cancelled ctx) = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.AcceptStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcceptStream with nothing to accept = %v, want context.DeadlineExceeded", err)
	}
}

func TestSessionIsListener(t *testing.T) {
	c1, c2 := tcpPair(t)
	c, s := sessionPairOn(t, c1, c2, nil, nil)
	var ln net.Listener = s
	if ln.Addr().String() != c2.LocalAddr().String() {
		t.Fatalf("Addr() = %v, want %v", ln.Addr(), c2.LocalAddr())
	}
	conn, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	got, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got.(*Stream).ID() != conn.(*Stream).ID() {
		t.Fatalf("accepted stream %d, opened %d", got.(*Stream).ID(), conn.(*Stream).ID())
	}
	if got.LocalAddr().String() != c2.LocalAddr().String() || got.RemoteAddr().String() != c2.RemoteAddr().String() {
		t.Fatalf("stream addrs %v/%v, want the connection's %v/%v", got.LocalAddr(), got.RemoteAddr(), c2.LocalAddr(), c2.RemoteAddr())
	}
	ln.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

func TestInvalidConfig(t *testing.T) {
	bad := []*Config{
		{MaxFrameSize: 100},
		{MaxFrameSize: 32 << 20},
		{InitialStreamWindow: 100},
		{InitialStreamWindow: 1 << 20, MaxStreamWindow: 1 << 19},
		{MaxSessionWindow: 100},
		{AcceptBacklog: -1},
		{MaxIncomingStreams: -1},
		{HandshakeTimeout: -time.Second},
		{Compression: 7},
	}
	for _, cfg := range bad {
		c1, c2 := tcpPair(t)
		s, err := Client(c1, cfg)
		if err == nil {
			s.Close()
			t.Errorf("Client(%+v) succeeded, want a config error", *cfg)
		}
		c1.Close()
		c2.Close()
	}
}

// TestInvalidConfigClosesConn: Client's doc says "On error conn is
// closed", config errors included.
func TestInvalidConfigClosesConn(t *testing.T) {
	c1, c2 := tcpPair(t)
	defer c2.Close()
	if _, err := Client(c1, &Config{MaxFrameSize: 1}); err == nil {
		t.Fatal("no config error")
	}
	if _, err := c1.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		c1.Close()
		t.Fatalf("conn still usable after Client failed: Write = %v", err)
	}
}

func TestCloseWrite(t *testing.T) {
	c, s := sessionPair(t, nil, nil)
	cst := open(t, c)
	msg := pattern(1, 100_000)
	if _, err := cst.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := cst.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := cst.Write([]byte("late")); !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("Write after CloseWrite = %v, want ErrWriteClosed", err)
	}

	sst := accept(t, s)
	sst.SetReadDeadline(time.Now().Add(failAfter))
	got, err := io.ReadAll(sst)
	if err != nil {
		t.Fatalf("peer's read: %v (want io.EOF after the data)", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("peer read %d bytes, want %d", len(got), len(msg))
	}
	if n, err := sst.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF = %d, %v; want 0, io.EOF", n, err)
	}

	// The half-closed peer can still write back; the closer reads it.
	reply := pattern(2, 50_000)
	if _, err := sst.Write(reply); err != nil {
		t.Fatalf("peer's write after receiving FIN: %v", err)
	}
	sst.Close()
	cst.SetReadDeadline(time.Now().Add(failAfter))
	got, err = io.ReadAll(cst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, reply) {
		t.Fatalf("closer read %d bytes, want %d", len(got), len(reply))
	}
	cst.Close()
	eventually(t, "both sides forget the stream", func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
}

func TestReset(t *testing.T) {
	const code = 0x1234
	c, s := sessionPair(t, nil, nil)

	t.Run("PeerBlockedInRead", func(t *testing.T) {
		cst := open(t, c)
		sst := accept(t, s)
		rc := make(chan result, 1)
		go func() { n, err := sst.Read(make([]byte, 10)); rc <- result{n: n, err: err} }()
		if err := cst.Reset(code); err != nil {
			t.Fatal(err)
		}
		r := waitResult(t, rc, failAfter, "peer's blocked Read")
		wantStreamError(t, "peer's Read", r.err, code, true)
		_, err := sst.Write([]byte("x"))
		wantStreamError(t, "peer's Write", err, code, true)

		_, err = cst.Read(make([]byte, 1))
		wantStreamError(t, "local Read", err, code, false)
		_, err = cst.Write([]byte("x"))
		wantStreamError(t, "local Write", err, code, false)
		if err := cst.Reset(code + 1); err != nil {
			t.Fatalf("second Reset: %v", err)
		}
		_, err = cst.Read(make([]byte, 1))
		wantStreamError(t, "Read after second Reset", err, code, false)
	})

	t.Run("PeerBlockedInWrite", func(t *testing.T) {
		// The client reads nothing; the server's write fills the window
		// and blocks until the client resets the stream.
		cst := open(t, c)
		sst := accept(t, s)
		big := make([]byte, 4<<20)
		rc := make(chan result, 1)
		go func() { n, err := sst.Write(big); rc <- result{n: n, err: err} }()
		eventually(t, "data to arrive", func() bool { return c.Stats().DataReceived > 0 })
		cst.Reset(uint32(frame.Cancel))
		r := waitResult(t, rc, failAfter, "peer's blocked Write")
		if r.err == nil {
			t.Fatal(writeAbortBug)
		}
		wantStreamError(t, "peer's Write", r.err, uint32(frame.Cancel), true)
		if r.n >= len(big) {
			t.Fatalf("blocked Write reported %d bytes sent of %d", r.n, len(big))
		}
	})

	t.Run("StreamsForgotten", func(t *testing.T) {
		eventually(t, "reset streams to be forgotten", func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
	})
}

// TestAbortedWrite: a Write blocked on flow control that is cut short by
// a reset or the end of the session reports an error and the bytes it
// actually sent.
func TestAbortedWrite(t *testing.T) {
	for _, how := range []string{"RemoteReset", "LocalReset", "SessionClose"} {
		t.Run(how, func(t *testing.T) {
			c, s := sessionPair(t, nil, &Config{InitialStreamWindow: 1024, MaxStreamWindow: 1024})
			cst := open(t, c)
			sst := accept(t, s)
			rc := make(chan result, 1)
			go func() { n, err := cst.Write(make([]byte, 64<<10)); rc <- result{n: n, err: err, write: true} }()
			eventually(t, "the window to fill", func() bool { return s.Stats().DataReceived == 1024 })
			switch how {
			case "RemoteReset":
				sst.Reset(0x100)
			case "LocalReset":
				cst.Reset(0x100)
			case "SessionClose":
				c.Close()
			}
			r := waitResult(t, rc, failAfter, "the blocked Write")
			if r.err == nil {
				t.Fatalf("Write returned %d, nil; want an error", r.n)
			}
			if r.n != 1024 {
				t.Fatalf("Write returned n=%d, want 1024 (the bytes the window let through)", r.n)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	c, s := sessionPair(t, nil, &Config{InitialStreamWindow: 1024, MaxStreamWindow: 1024})

	t.Run("ReadDeadlineMovedEarlier", func(t *testing.T) {
		cst := open(t, c)
		accept(t, s)
		cst.SetReadDeadline(time.Now().Add(time.Hour))
		rc := make(chan result, 1)
		go func() { n, err := cst.Read(make([]byte, 10)); rc <- result{n: n, err: err} }()
		start := time.Now()
		cst.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		r := waitResult(t, rc, 2*time.Second, "Read after its deadline was moved earlier")
		wantTimeout(t, "Read", r.err)
		if time.Since(start) < 40*time.Millisecond {
			t.Fatalf("Read timed out after %v, before its 50ms deadline", time.Since(start))
		}
		// A deadline in the past fails the next Read at once.
		cst.SetReadDeadline(time.Now().Add(-time.Second))
		_, err := cst.Read(make([]byte, 1))
		wantTimeout(t, "Read with a past deadline", err)
	})

	t.Run("ReadDeadlineInPastWakes", func(t *testing.T) {
		cst := open(t, c)
		accept(t, s)
		rc := make(chan result, 1)
		go func() { n, err := cst.Read(make([]byte, 10)); rc <- result{n: n, err: err} }()
		cst.SetDeadline(time.Now().Add(-time.Second))
		r := waitResult(t, rc, 2*time.Second, "Read after SetDeadline(past)")
		wantTimeout(t, "Read", r.err)
	})

	t.Run("WriteBlockedOnFlowControl", func(t *testing.T) {
		cst := open(t, c)
		sst := accept(t, s)
		msg := pattern(3, 64<<10)
		rc := make(chan result, 1)
		go func() { n, err := cst.Write(msg); rc <- result{n: n, err: err} }()
		// Once the server has the 1024 bytes its window allows, the Write
		// is blocked on flow control; a deadline set now must wake it.
		eventually(t, "the window to fill", func() bool { return s.Stats().DataReceived >= 1024 })
		cst.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		r := waitResult(t, rc, 3*time.Second, "Write blocked on flow control")
		wantTimeout(t, "Write", r.err)
		// The server's window is 1024 bytes and it has read nothing: exactly
		// that much was sent, and Write says so.
		if r.n != 1024 {
			t.Fatalf("timed-out Write returned n=%d, want 1024 (the peer's window)", r.n)
		}
		if got := readN(t, sst, r.n); !bytes.Equal(got, msg[:r.n]) {
			t.Fatal("peer received different bytes than Write reported sent")
		}

		// Write fails at once while the deadline is in the past...
		if n, err := cst.Write([]byte("x")); n != 0 {
			t.Fatalf("Write with an expired deadline sent %d bytes", n)
		} else {
			wantTimeout(t, "Write with an expired deadline", err)
		}
		// ...and works again once it is cleared. Nothing of the timed-out
		// Write's unsent remainder follows.
		cst.SetWriteDeadline(time.Time{})
		more := []byte("after the deadline was cleared")
		if _, err := cst.Write(more); err != nil {
			t.Fatalf("Write after clearing the deadline: %v", err)
		}
		if got := readN(t, sst, len(more)); !bytes.Equal(got, more) {
			t.Fatalf("peer read %q, want %q", got, more)
		}
	})

	t.Run("ClearReadDeadline", func(t *testing.T) {
		cst := open(t, c)
		sst := accept(t, s)
		cst.SetReadDeadline(time.Now().Add(-time.Second))
		if _, err := cst.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %v, want a timeout", err)
		}
		cst.SetReadDeadline(time.Time{})
		rc := make(chan result, 1)
		buf := make([]byte, 10)
		go func() { n, err := cst.Read(buf); rc <- result{n: n, err: err} }()
		if _, err := sst.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		r := waitResult(t, rc, failAfter, "Read with a cleared deadline")
		if r.err != nil || string(buf[:r.n]) != "hi" {
			t.Fatalf("Read = %q, %v; want \"hi\", nil", buf[:r.n], r.err)
		}
	})
}

// pingCloseBug is a known bug; see TestPingFailsWhenSessionEnds.
const pingCloseBug = "regression: a Ping waiting for its answer returns (elapsed, nil) instead of an error when the session ends " +
	"(shutdown closes the waiting Ping's channel, and Ping's select treats that as the answer half of the time)"

// TestPingFailsWhenSessionEnds: a Ping whose answer never comes fails with
// net.ErrClosed when the session ends.
func TestPingFailsWhenSessionEnds(t *testing.T) {
	for i := range 20 { // the bug shows about half of the time
		fp := newFakePeer(t, nil, fakeOpts{noPingAnswer: true})
		rc := make(chan result, 1)
		go func() { d, err := fp.sess.Ping(context.Background()); rc <- result{n: int(d), err: err} }()
		fp.waitFor("the PING", func() bool { return len(fp.pings) >= 2 })
		fp.sess.Close()
		r := waitResult(t, rc, failAfter, "Ping after Close")
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("round %d: unanswered Ping returned %v, %v after Close; want net.ErrClosed", i, time.Duration(r.n), r.err)
		}
	}
}

func TestPing(t *testing.T) {
	c, s := sessionPair(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	for _, sess := range []*Session{c, s} {
		rtt, err := sess.Ping(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rtt <= 0 {
			t.Fatalf("Ping returned %v, want > 0", rtt)
		}
		if st := sess.Stats(); st.RTT <= 0 {
			t.Fatalf("Stats().RTT = %v after a Ping, want > 0", st.RTT)
		}
	}
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := c.Ping(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func TestGoAway(t *testing.T) {
	for _, side := range []string{"client", "server"} {
		t.Run("From"+side, func(t *testing.T) {
			c, s := sessionPair(t, nil, nil)
			cst := open(t, c)
			sst := accept(t, s)
			goer, other := c, s
			gst, ost := cst, sst
			if side == "server" {
				goer, other, gst, ost = s, c, sst, cst
			}
			if err := goer.GoAway(); err != nil {
				t.Fatal(err)
			}
			if err := goer.GoAway(); err != nil {
				t.Fatalf("second GoAway: %v", err)
			}
			if _, err := goer.OpenStream(context.Background()); !errors.Is(err, ErrGoAway) {
				t.Fatalf("OpenStream after GoAway = %v, want ErrGoAway", err)
			}
			// The GOAWAY goes out before this data, so once the peer has
			// read it, it has processed the GOAWAY.
			if _, err := gst.Write([]byte("after goaway")); err != nil {
				t.Fatalf("existing stream after GoAway: %v", err)
			}
			readN(t, ost, len("after goaway"))
			if _, err := other.OpenStream(context.Background()); !errors.Is(err, ErrGoAway) {
				t.Fatalf("peer's OpenStream after receiving GOAWAY = %v, want ErrGoAway", err)
			}

			// The existing stream keeps working both ways.
			if _, err := ost.Write([]byte("reply")); err != nil {
				t.Fatal(err)
			}
			readN(t, gst, len("reply"))
			if goer.IsClosed() || other.IsClosed() {
				t.Fatal("a session closed while a stream was still open")
			}

			// Once both sides have closed it, both sessions end by
			// themselves.
			gst.Close()
			ost.Close()
			waitClosed(t, goer, "GOAWAY sender")
			waitClosed(t, other, "GOAWAY receiver")
			for _, sess := range []*Session{goer, other} {
				if err := sess.Err(); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Err() after graceful GOAWAY = %v, want net.ErrClosed", err)
				}
			}
		})
	}
}

func TestGoAwayRefusesInFlightSYN(t *testing.T) {
	// A stream the peer opens after this side's GoAway is refused. (An
	// open stream keeps the session from closing at once.)
	fp := newFakePeer(t, nil, fakeOpts{client: true})
	if err := fp.write(syn(1, nil, 0)); err != nil {
		t.Fatal(err)
	}
	accept(t, fp.sess)
	if err := fp.sess.GoAway(); err != nil {
		t.Fatal(err)
	}
	fp.waitFor("GOAWAY", func() bool { return len(fp.goaways) > 0 })
	if g := fp.goaways[0]; g.ErrorCode != frame.NoError || g.LastStreamID != 1 {
		t.Fatalf("GOAWAY = %v, want NO_ERROR with last_stream_id 1", &g)
	}
	if err := fp.write(syn(3, []byte("late"), 0)); err != nil {
		t.Fatal(err)
	}
	fp.waitFor("RESET REFUSED_STREAM", func() bool { return fp.resets[frame.RefusedStream] == 1 })
	if got := fp.sess.Stats().StreamsRefused; got != 1 {
		t.Fatalf("StreamsRefused = %d, want 1", got)
	}
}

func TestSessionClose(t *testing.T) {
	c, s := sessionPair(t, nil, &Config{InitialStreamWindow: 1024, MaxStreamWindow: 1024})
	const n = 4
	calls := make(chan result, 3*n+2)
	var streams []*Stream
	for i := 0; i < n; i++ {
		rd, wr := open(t, c), open(t, c)
		streams = append(streams, rd, wr)
		go func() { n, err := rd.Read(make([]byte, 10)); calls <- result{n: n, err: err, call: "Read"} }()
		go func() { n, err := wr.Write(make([]byte, 1<<20)); calls <- result{n: n, err: err, write: true} }()
	}
	for range 2 * n {
		accept(t, s)
	}
	// A server stream whose client side reads: the server's Read is
	// blocked too, on the other session.
	sst := open(t, s)
	go func() { n, err := sst.Read(make([]byte, 10)); calls <- result{n: n, err: err, call: "server Read"} }()
	accept(t, c) // the server's stream; the next AcceptStream blocks
	// The writers are blocked once the server has their windows' worth.
	eventually(t, "the writers to fill their windows", func() bool { return s.Stats().DataReceived == n*1024 })
	go func() {
		_, err := c.AcceptStream(context.Background())
		calls <- result{err: err, call: "AcceptStream"}
	}()

	if got := c.NumStreams(); got != 2*n+1 {
		t.Fatalf("NumStreams = %d, want %d", got, 2*n+1)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !c.IsClosed() {
		t.Fatal("IsClosed false after Close")
	}
	select {
	case <-c.CloseChan():
	default:
		t.Fatal("CloseChan not closed after Close returned")
	}
	writeBug := false
	for i := 0; i < 2*n+2; i++ { // 2n client streams, AcceptStream, the server's Read
		r := waitResult(t, calls, failAfter, "a blocked call after Session.Close")
		if r.write && (r.err == nil || r.n == 1<<20) {
			writeBug = true
			continue
		}
		if !errors.Is(r.err, net.ErrClosed) {
			t.Fatalf("blocked %s returned %d, %v; want an error matching net.ErrClosed", r.call, r.n, r.err)
		}
		if r.write && r.n != 1024 {
			t.Fatalf("blocked Write returned n=%d, want 1024 (the peer's window)", r.n)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, st := range streams {
		if _, err := st.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after session Close = %v, want net.ErrClosed", err)
		}
		if _, err := st.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after session Close = %v, want net.ErrClosed", err)
		}
	}
	if _, err := c.OpenStream(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("OpenStream after Close = %v, want net.ErrClosed", err)
	}
	if _, err := c.Ping(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Ping after Close = %v, want net.ErrClosed", err)
	}
	if err := c.GoAway(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("GoAway after Close = %v, want net.ErrClosed", err)
	}
	if err := c.Err(); !errors.Is(err, ErrSessionClosed) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Err() = %v, want ErrSessionClosed matching net.ErrClosed", err)
	}

	// The server's session ends when the client's does (its blocked Read
	// was among the calls above).
	waitClosed(t, s, "server after client Close")
	if writeBug {
		t.Fatal(writeAbortBug)
	}
}

func TestNumStreams(t *testing.T) {
	c, s := sessionPair(t, nil, nil)
	var cs, ss []*Stream
	for i := 0; i < 3; i++ {
		cs = append(cs, open(t, c))
		ss = append(ss, accept(t, s))
	}
	if got := c.NumStreams(); got != 3 {
		t.Fatalf("client NumStreams = %d, want 3", got)
	}
	eventually(t, "server NumStreams 3", func() bool { return s.NumStreams() == 3 })

	// A stream closed by both sides is gone from both.
	cs[0].Close()
	ss[0].Close()
	eventually(t, "NumStreams 2 after a close", func() bool { return c.NumStreams() == 2 && s.NumStreams() == 2 })
	// Closing one side only keeps it open.
	cs[1].Close()
	if got := c.NumStreams(); got != 2 {
		t.Fatalf("client NumStreams = %d after a half close, want 2", got)
	}
	// A reset stream is forgotten at once locally, and soon by the peer.
	ss[2].Reset(0x100)
	if got := s.NumStreams(); got != 1 {
		t.Fatalf("server NumStreams = %d after Reset, want 1", got)
	}
	ss[1].Close()
	eventually(t, "NumStreams 0", func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
	if st := c.Stats(); st.StreamsOpened != 3 || st.OpenStreams != 0 {
		t.Fatalf("client Stats: opened %d, open %d; want 3, 0", st.StreamsOpened, st.OpenStreams)
	}
	if st := s.Stats(); st.StreamsAccepted != 3 {
		t.Fatalf("server Stats: accepted %d, want 3", st.StreamsAccepted)
	}
}

// TestConcurrentStreams runs many streams at once in both directions and
// checks every byte.
func TestConcurrentStreams(t *testing.T) {
	const streams = 100
	size := 64 << 10
	if testing.Short() {
		size = 8 << 10
	}
	c, s := sessionPair(t, nil, nil)

	// Server: echo every stream.
	var srv sync.WaitGroup
	srv.Add(streams)
	go func() {
		for range streams {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				t.Error(err)
				for range streams {
					srv.Done()
				}
				return
			}
			go func() {
				defer srv.Done()
				defer st.Close()
				if _, err := io.Copy(st, st); err != nil {
					t.Errorf("echo %d: %v", st.ID(), err)
				}
			}()
		}
	}()

	errc := make(chan error, streams)
	for i := range streams {
		go func() {
			st, err := c.OpenStream(context.Background())
			if err != nil {
				errc <- err
				return
			}
			defer st.Close()
			st.SetDeadline(time.Now().Add(30 * time.Second))
			msg := pattern(uint64(i), size)
			want := sha256.Sum256(msg)
			wc := make(chan error, 1)
			go func() {
				// Uneven chunks, so frames of different streams mix.
				rest := msg
				for len(rest) > 0 {
					k := min(len(rest), 1+int(rest[0])*37)
					if _, err := st.Write(rest[:k]); err != nil {
						wc <- err
						return
					}
					rest = rest[k:]
				}
				wc <- st.CloseWrite()
			}()
			h := sha256.New()
			n, err := io.Copy(h, st)
			if werr := <-wc; werr != nil {
				errc <- werr
				return
			}
			if err != nil {
				errc <- err
				return
			}
			if n != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
				errc <- errors.New("echo mismatch")
				return
			}
			errc <- nil
		}()
	}
	for range streams {
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("concurrent streams did not finish")
		}
	}
	srv.Wait()
	eventually(t, "all streams to be forgotten", func() bool { return c.NumStreams() == 0 && s.NumStreams() == 0 })
}

// TestConcurrentWritesWhole checks that concurrent Writes on one stream
// are serialized whole: their bytes never interleave.
func TestConcurrentWritesWhole(t *testing.T) {
	const writers, records, recSize = 8, 50, 20_000
	c, s := sessionPair(t, nil, &Config{InitialStreamWindow: 4096, MaxStreamWindow: 8192})
	cst := open(t, c)
	sst := accept(t, s)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rec := bytes.Repeat([]byte{byte('a' + w)}, recSize)
			for range records {
				if _, err := cst.Write(rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); cst.CloseWrite() }()
	sst.SetReadDeadline(time.Now().Add(30 * time.Second))
	counts := make(map[byte]int)
	rec := make([]byte, recSize)
	for {
		if _, err := io.ReadFull(sst, rec); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(rec, bytes.Repeat(rec[:1], recSize)) {
			t.Fatalf("a %d-byte record mixes writers: starts %q, has %q", recSize, rec[0], rec[bytes.IndexFunc(rec, func(r rune) bool { return byte(r) != rec[0] })])
		}
		counts[rec[0]]++
	}
	for w := range writers {
		if counts[byte('a'+w)] != records {
			t.Fatalf("writer %d: %d records, want %d", w, counts[byte('a'+w)], records)
		}
	}
}

// TestConcurrentStreamCalls runs Read, Write, Close and SetDeadline on one
// stream at once; under -race this is the data-race check for a stream.
func TestConcurrentStreamCalls(t *testing.T) {
	c, s := sessionPair(t, nil, nil)
	for i := range 20 {
		cst := open(t, c)
		sst := accept(t, s)
		go io.Copy(io.Discard, sst)
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				if _, err := cst.Write(make([]byte, 1000)); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			for {
				if _, err := cst.Read(make([]byte, 100)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					return
				}
			}
		})
		wg.Go(func() {
			for j := range 50 {
				cst.SetDeadline(time.Now().Add(time.Duration(j%5) * time.Millisecond))
			}
			cst.SetDeadline(time.Time{})
		})
		wg.Go(func() {
			if i%2 == 0 {
				cst.Close()
			} else {
				cst.Reset(0x100)
			}
		})
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(failAfter):
			t.Fatal("concurrent calls on a closed stream did not all return")
		}
		sst.Close()
	}
}
