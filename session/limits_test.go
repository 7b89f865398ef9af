package session

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

func TestKeepAlive(t *testing.T) {
	cfg := &Config{KeepAliveInterval: 50 * time.Millisecond, KeepAliveTimeout: 200 * time.Millisecond}

	t.Run("SilentPeerTimesOut", func(t *testing.T) {
		fp := newFakePeer(t, cfg, fakeOpts{noPingAnswer: true})
		start := time.Now()
		waitClosed(t, fp.sess, "keepalive against a silent peer")
		if took := time.Since(start); took < 150*time.Millisecond {
			t.Fatalf("session closed after %v, before the 200ms keepalive timeout", took)
		}
		err := fp.sess.Err()
		if !errors.Is(err, ErrKeepAliveTimeout) || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Err() = %v, want ErrKeepAliveTimeout matching net.ErrClosed", err)
		}
		if !fp.sess.IsClosed() {
			t.Fatal("IsClosed false")
		}
		fp.mu.Lock()
		pings := len(fp.pings)
		fp.mu.Unlock()
		if pings == 0 {
			t.Fatal("the session sent no PING before giving up")
		}
	})

	t.Run("GoAwayOnTimeout", func(t *testing.T) {
		// SPEC.md §7: the session ends with GOAWAY KEEPALIVE_TIMEOUT.
		fp := newFakePeer(t, cfg, fakeOpts{noPingAnswer: true})
		if g := fp.waitGoAway(); g.ErrorCode != frame.KeepAliveTimeout {
			t.Fatalf("GOAWAY %v, want KEEPALIVE_TIMEOUT", &g)
		}
	})

	t.Run("AnsweringPeerStaysUp", func(t *testing.T) {
		fp := newFakePeer(t, cfg, fakeOpts{})
		// Several keepalive rounds pass and are answered.
		fp.waitFor("5 keepalive PINGs", func() bool { return len(fp.pings) >= 5 })
		if fp.sess.IsClosed() {
			t.Fatalf("session with an answering peer closed: %v", fp.sess.Err())
		}
		if rtt := fp.sess.Stats().RTT; rtt <= 0 {
			t.Fatalf("Stats().RTT = %v after answered keepalives, want > 0", rtt)
		}
	})
}

// TestKeepAliveAnyFrameIsLife: SPEC.md §7 says the keepalive timeout fires
// when no frame at all arrives from the peer for that long: any frame is
// a sign of life. A peer that keeps sending frames (its own PINGs here)
// but is slow to answer must not be dropped.
func TestKeepAliveAnyFrameIsLife(t *testing.T) {
	cfg := &Config{KeepAliveInterval: 50 * time.Millisecond, KeepAliveTimeout: 200 * time.Millisecond}
	fp := newFakePeer(t, cfg, fakeOpts{noPingAnswer: true})
	// Send a frame every 20 ms for 1 s: five keepalive timeouts' worth.
	for i := range 50 {
		fp.ping(uint64(1000 + i))
		time.Sleep(20 * time.Millisecond)
	}
	if fp.sess.IsClosed() {
		t.Fatalf("session closed while frames kept arriving: %v", fp.sess.Err())
	}
}

func TestMaxIncomingStreams(t *testing.T) {
	c, s := sessionPair(t, nil, &Config{MaxIncomingStreams: 4})
	var sts []*Stream
	for range 10 {
		sts = append(sts, open(t, c))
	}
	// The first four are accepted, the other six refused.
	for i, st := range sts[4:] {
		st.SetReadDeadline(time.Now().Add(failAfter))
		_, err := st.Read(make([]byte, 1))
		wantStreamError(t, "Read on a refused stream", err, uint32(frame.RefusedStream), true)
		if _, err := st.Write([]byte("x")); err == nil {
			t.Fatalf("Write on refused stream %d succeeded", i+4)
		}
	}
	if got := s.Stats().StreamsRefused; got != 6 {
		t.Fatalf("server StreamsRefused = %d, want 6", got)
	}
	if got := s.Stats().StreamsAccepted; got != 4 {
		t.Fatalf("server StreamsAccepted = %d, want 4", got)
	}
	var acc []*Stream
	for i := range 4 {
		st := accept(t, s)
		if st.ID() != sts[i].ID() {
			t.Fatalf("accepted stream %d, want %d", st.ID(), sts[i].ID())
		}
		acc = append(acc, st)
	}
	if got := c.NumStreams(); got != 4 {
		t.Fatalf("client NumStreams = %d, want 4 (refused streams are gone)", got)
	}

	// Accepting does not free a slot: the limit is on open streams.
	extra := open(t, c)
	extra.SetReadDeadline(time.Now().Add(failAfter))
	_, err := extra.Read(make([]byte, 1))
	wantStreamError(t, "Read on a stream over the limit", err, uint32(frame.RefusedStream), true)

	// Closing one (both sides) does.
	sts[0].Close()
	acc[0].Close()
	eventually(t, "server to forget the closed stream", func() bool { return s.NumStreams() == 3 })
	again := open(t, c)
	if _, err := again.Write([]byte("fits")); err != nil {
		t.Fatal(err)
	}
	st := accept(t, s)
	if got := readN(t, st, 4); string(got) != "fits" {
		t.Fatalf("read %q", got)
	}
}

// TestAcceptBacklog: an opener whose peer's accept backlog is full of its
// unaccepted streams waits in OpenStream (SPEC.md §5.2) instead of having
// streams refused; each Accept on the peer acknowledges a stream and lets
// one more open. (A peer that ignores the backlog is refused: see the
// fake-peer flood test.)
func TestAcceptBacklog(t *testing.T) {
	c, s := sessionPair(t, nil, &Config{AcceptBacklog: 3})
	var sts []*Stream
	for range 3 {
		sts = append(sts, open(t, c))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.OpenStream(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenStream with the peer's backlog full: %v, want to wait until the context ends", err)
	}
	// Accepting one acknowledges it and frees a slot for a waiting open.
	opened := make(chan *Stream, 1)
	go func() {
		st, err := c.OpenStream(context.Background())
		if err != nil {
			t.Error(err)
		}
		opened <- st
	}()
	if st := accept(t, s); st.ID() != sts[0].ID() {
		t.Fatalf("accepted %d, want %d", st.ID(), sts[0].ID())
	}
	var more *Stream
	select {
	case more = <-opened:
	case <-time.After(failAfter):
		t.Fatal("OpenStream still waiting after the peer accepted a stream")
	}
	if _, err := more.Write([]byte("m")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint32{sts[1].ID(), sts[2].ID(), more.ID()} {
		if st := accept(t, s); st.ID() != want {
			t.Fatalf("accepted %d, want %d", st.ID(), want)
		}
	}
	if got := s.Stats().StreamsRefused; got != 0 {
		t.Fatalf("StreamsRefused = %d, want 0", got)
	}
}

// TestOpenBurst: a burst of opens far beyond the peer's accept backlog,
// with the peer accepting as fast as it can, all succeed.
func TestOpenBurst(t *testing.T) {
	c, s := sessionPair(t, nil, &Config{AcceptBacklog: 16})
	const n = 1000
	go func() {
		for range n {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			st.Close()
		}
	}()
	errs := make(chan error, n)
	for range n {
		go func() {
			st, err := c.OpenStream(context.Background())
			if err == nil {
				_, err = st.Read(make([]byte, 1))
				if err == io.EOF {
					err = nil
				}
				st.Close()
			}
			errs <- err
		}()
	}
	for range n {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("burst of opens stalled")
		}
	}
	if got := s.Stats().StreamsRefused; got != 0 {
		t.Fatalf("StreamsRefused = %d, want 0", got)
	}
}

// TestConnectionCut: when the connection goes away, every blocked call on
// the session and its streams returns promptly with net.ErrClosed.
func TestConnectionCut(t *testing.T) {
	for _, who := range []string{"LocalClose", "PeerClose"} {
		t.Run(who, func(t *testing.T) {
			h := fakeHello()
			h.InitialWindow = 1024
			fp := newFakePeer(t, nil, fakeOpts{hello: &h, noPingAnswer: true})
			sess := fp.sess
			calls := make(chan result, 32)
			var writers []uint32
			for i := range 20 {
				st := open(t, sess)
				if i%2 == 0 {
					go func() { n, err := st.Read(make([]byte, 100)); calls <- result{n: n, err: err, call: "Read"} }()
				} else {
					writers = append(writers, st.ID())
					go func() { n, err := st.Write(make([]byte, 4096)); calls <- result{n: n, err: err, write: true} }()
				}
			}
			go func() {
				_, err := sess.AcceptStream(context.Background())
				calls <- result{err: err, call: "AcceptStream"}
			}()
			go func() { d, err := sess.Ping(context.Background()); calls <- result{n: int(d), err: err, call: "Ping"} }()
			// Writers are blocked once the peer has their first 1024 bytes
			// (its whole window); the Ping once its PING has arrived (the
			// first PING is the session's own keepalive probe).
			fp.waitFor("writers to fill their windows and the PING", func() bool {
				for _, id := range writers {
					if fp.data[id] != 1024 {
						return false
					}
				}
				return len(fp.pings) >= 2
			})
			start := time.Now()
			if who == "LocalClose" {
				fp.sconn.Close()
			} else {
				fp.conn.Close()
			}
			writeBug, pingBug := false, false
			for range 22 {
				r := waitResult(t, calls, time.Second+time.Since(start), "a blocked call after the connection was cut")
				if r.write && (r.err == nil || r.n == 4096) {
					writeBug = true
					continue
				}
				if r.call == "Ping" && r.err == nil {
					pingBug = true
					continue
				}
				if !errors.Is(r.err, net.ErrClosed) {
					t.Fatalf("blocked %s returned %d, %v; want net.ErrClosed", r.call, r.n, r.err)
				}
				if r.write && r.n != 1024 {
					t.Fatalf("cut Write returned n=%d, want 1024 (the peer's window)", r.n)
				}
			}
			if took := time.Since(start); took > time.Second {
				t.Fatalf("blocked calls took %v to return, want < 1s", took)
			}
			waitClosed(t, sess, "after the connection was cut")
			if err := sess.Err(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Err() = %v", err)
			}
			if writeBug {
				t.Fatal(writeAbortBug)
			}
			if pingBug {
				t.Fatal(pingCloseBug)
			}
		})
	}
}

// TestSlowReaderIsolation: a stream whose reader never reads stalls only
// itself; a bulk transfer on another stream of the same session completes.
func TestSlowReaderIsolation(t *testing.T) {
	size := 32 << 20
	if testing.Short() {
		size = 8 << 20
	}
	c, s := sessionPair(t, nil, nil)

	// Stream A: the server never reads it. Fill its window.
	a := open(t, c)
	accept(t, s)
	a.SetWriteDeadline(time.Now().Add(failAfter))
	wc := make(chan result, 1)
	go func() { n, err := a.Write(make([]byte, 64<<20)); wc <- result{n: n, err: err, write: true} }()
	eventually(t, "stream A's window to fill", func() bool {
		st := c.Stats()
		return st.FlowControlBlocked > 0 || st.DataSent >= uint64(DefaultConfig().InitialStreamWindow)
	})

	// Stream B: 32 MiB with a checksum.
	b := open(t, c)
	bs := accept(t, s)
	want := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), int64(size)), want)
	sendErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(b, src)
		if err == nil {
			err = b.CloseWrite()
		}
		sendErr <- err
	}()
	got := sha256.New()
	bs.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(got, bs)
	if err != nil {
		t.Fatalf("stream B: %v after %d bytes", err, n)
	}
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	if n != int64(size) || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("stream B: %d bytes, checksum match %v; want %d bytes", n, bytes.Equal(got.Sum(nil), want.Sum(nil)), size)
	}
	// Stream A is still stuck, not failed.
	select {
	case r := <-wc:
		t.Fatalf("stream A's Write returned %d, %v while its reader reads nothing", r.n, r.err)
	default:
	}
	a.Reset(uint32(frame.Cancel))
	r := waitResult(t, wc, failAfter, "stream A's Write after Reset")
	if r.err == nil {
		t.Fatal(writeAbortBug)
	}
	wantStreamError(t, "stream A's Write", r.err, uint32(frame.Cancel), false)
}

// TestStreamOnlyReferencedByCopy: a stream known only to running io.Copy
// calls survives garbage collection while data flows.
func TestStreamOnlyReferencedByCopy(t *testing.T) {
	const size = 32 << 20
	c, s := sessionPair(t, nil, nil)
	sent := make(chan result, 1)
	recv := make(chan [sha256.Size]byte, 1)
	received := make(chan result, 1)
	// Both ends are created and handed to goroutines inside this
	// function; the test keeps no reference to either stream.
	func() {
		st, err := c.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			n, err := io.Copy(st, io.LimitReader(rand.NewChaCha8([32]byte{2}), size))
			if err == nil {
				err = st.CloseWrite()
			}
			sent <- result{n: int(n), err: err}
		}()
		go func() {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				received <- result{err: err}
				return
			}
			h := sha256.New()
			n, err := io.Copy(h, st)
			recv <- [sha256.Size]byte(h.Sum(nil))
			received <- result{n: int(n), err: err}
		}()
	}()
	var got result
	deadline := time.Now().Add(30 * time.Second)
	gcs := 0
	for got.err == nil && got.n == 0 {
		runtime.GC()
		gcs++
		select {
		case got = <-received:
			if got.err == nil && got.n == 0 {
				t.Fatal("receiving copy got nothing")
			}
		default:
			if time.Now().After(deadline) {
				t.Fatal("copy did not finish")
			}
		}
	}
	t.Logf("%d GCs while the copies ran", gcs)
	if got.err != nil || got.n != size {
		t.Fatalf("receiving copy: %d bytes, %v; want %d, nil", got.n, got.err, size)
	}
	want := sha256.New()
	io.Copy(want, io.LimitReader(rand.NewChaCha8([32]byte{2}), size))
	if h := <-recv; !bytes.Equal(h[:], want.Sum(nil)) {
		t.Fatal("checksum mismatch")
	}
	if r := waitResult(t, sent, failAfter, "sending copy"); r.err != nil || r.n != size {
		t.Fatalf("sending copy: %d bytes, %v", r.n, r.err)
	}
}

// TestStreamFlood: a peer opening 100 000 streams and never letting them
// be accepted is refused cheaply: the session stays up, refuses all but
// the backlog with RESET REFUSED_STREAM, and its memory stays bounded.
func TestStreamFlood(t *testing.T) {
	const streams = 100_000
	const backlog = 256
	fp := newFakePeer(t, &Config{MaxIncomingStreams: 1000, AcceptBacklog: backlog}, fakeOpts{client: true, countOnly: true})

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// Write the SYNs in chunks; the fake's reader drains the RESETs
	// meanwhile.
	var b []byte
	for i := range streams {
		f := syn(uint32(2*i+1), nil, 0)
		b = f.Append(b)
		if len(b) > 64<<10 || i == streams-1 {
			if err := fp.writeRaw(b); err != nil {
				t.Fatalf("after %d SYNs: %v", i, err)
			}
			b = b[:0]
		}
	}
	fp.ping(1 << 62) // answered after every SYN was handled
	fp.waitFor("all refusals", func() bool { return fp.resets[frame.RefusedStream] == streams-backlog })

	if fp.sess.IsClosed() {
		t.Fatalf("session closed: %v", fp.sess.Err())
	}
	st := fp.sess.Stats()
	if st.StreamsRefused != streams-backlog || st.StreamsAccepted != backlog {
		t.Fatalf("Stats: refused %d accepted %d; want %d, %d", st.StreamsRefused, st.StreamsAccepted, streams-backlog, backlog)
	}
	if got := fp.numResets(frame.RefusedStream); got != streams-backlog {
		t.Fatalf("peer received %d REFUSED_STREAM resets, want %d", got, streams-backlog)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap growth after %d SYNs: %d KiB", streams, growth>>10)
	if growth > 64<<20 {
		t.Fatalf("heap grew by %d MiB", growth>>20)
	}
	// The backlog is intact and in order.
	for i := range backlog {
		if st := accept(t, fp.sess); st.ID() != uint32(2*i+1) {
			t.Fatalf("accepted %d, want %d", st.ID(), 2*i+1)
		}
	}
}

// TestSteadyStateAllocs: once a stream is running, Write and Read of
// 32 KiB allocate nothing, on either side.
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	const size = 32 << 10
	buf := make([]byte, size)

	t.Run("Write", func(t *testing.T) {
		c, s := sessionPair(t, nil, nil)
		cst := open(t, c)
		sst := accept(t, s)
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			b := make([]byte, size)
			for {
				if _, err := sst.Read(b); err != nil {
					return
				}
			}
		}()
		for range 1000 { // warm up: windows grow, pools fill
			cst.Write(buf)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := cst.Write(buf); err != nil {
				t.Fatal(err)
			}
		})
		cst.Close()
		<-drained
		if allocs != 0 {
			t.Fatalf("Write of %d bytes: %v allocs per op, want 0", size, allocs)
		}
	})

	t.Run("Read", func(t *testing.T) {
		c, s := sessionPair(t, nil, nil)
		cst := open(t, c)
		sst := accept(t, s)
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				if _, err := sst.Write(buf); err != nil {
					return
				}
			}
		})
		rb := make([]byte, size)
		for range 1000 {
			io.ReadFull(cst, rb)
		}
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := io.ReadFull(cst, rb); err != nil {
				t.Fatal(err)
			}
		})
		cst.Reset(uint32(frame.Cancel))
		wg.Wait()
		if allocs != 0 {
			t.Fatalf("Read of %d bytes: %v allocs per op, want 0", size, allocs)
		}
	})
}

// raceEnabled reports whether the test binary was built with -race.
var raceEnabled = func() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}()

// TestStreamCloseTimeout: a stream closed here whose peer never closes
// its side is reset after StreamCloseTimeout and leaves the table.
func TestStreamCloseTimeout(t *testing.T) {
	c, s := sessionPair(t, &Config{StreamCloseTimeout: 100 * time.Millisecond}, nil)
	st := open(t, c)
	peer := accept(t, s)
	st.Close()
	if c.NumStreams() != 1 {
		t.Fatalf("NumStreams = %d right after Close, want 1 (the peer has not closed)", c.NumStreams())
	}
	eventually(t, "the closed stream to be forgotten", func() bool { return c.NumStreams() == 0 })
	buf := make([]byte, 1)
	eventually(t, "the peer to see the reset", func() bool {
		_, err := peer.Write(buf)
		var se *StreamError
		return errors.As(err, &se) && se.Code == uint32(frame.Cancel) && se.Remote
	})
}
