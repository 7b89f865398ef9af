package interop_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// suiteCase is one behavioural check, written once against muxSession
// and run against every muxer that has the features it needs.
type suiteCase struct {
	name    string
	what    string // one line for the README
	needs   []feature
	timeout time.Duration // for the whole child process; 0 means 30 s
	run     func(t *testing.T, m *muxer)
	// nettest names the golang.org/x/net/nettest.TestConn subtest the
	// case runs; the case reports itself as run from inside it.
	nettest string
}

// largeSize is the bulk transfer of the large_transfer case, each way.
const largeSize = 64 << 20

// concurrentStreams is how many streams concurrent_streams runs at once.
const concurrentStreams = 1000

var suiteCases = []suiteCase{
	{name: "open_accept", what: "either side opens, the other accepts; first bytes arrive", run: caseOpenAccept},
	{name: "echo", what: "messages from 1 B to 256 KiB echoed back intact", run: caseEcho},
	{name: "half_close", what: "CloseWrite → peer reads EOF after the data, then writes back", needs: []feature{featCloseWrite}, run: caseHalfClose},
	{name: "large_transfer", what: "64 MiB each way at once, SHA-256 checked", timeout: 90 * time.Second, run: caseLargeTransfer},
	{name: "parallel_bulk", what: "8 streams × 16 MiB each way at once, SHA-256 checked per stream", timeout: 60 * time.Second, run: caseParallelBulk},
	{name: "concurrent_streams", what: "1 000 streams open at once (opens paced: ≤ 64 awaiting their first echo), each echoes 4 KiB twice", timeout: 90 * time.Second, run: caseConcurrentStreams},
	{name: "open_burst", what: "1 000 Opens at once, server accepting: all succeed (Open may wait)", timeout: 60 * time.Second, run: caseOpenBurst},
	{name: "acceptor_writes_first", what: "the accepting side writes first, before the opener sends anything (1 000 streams)", timeout: 60 * time.Second, run: caseAcceptorWritesFirst},
	{name: "read_deadline", what: "read deadline: blocked Read returns a timeout net.Error; stream usable after", run: caseReadDeadline},
	{name: "write_deadline", what: "write deadline: Write blocked by flow control returns a timeout", run: caseWriteDeadline},
	{name: "deadline_error_is", what: "deadline errors satisfy errors.Is(err, os.ErrDeadlineExceeded)", run: caseDeadlineErrorIs},
	{name: "close_eof", what: "stream Close → peer reads the data, then io.EOF", run: caseCloseEOF},
	{name: "close_local", what: "stream Close unblocks this side's Read; later Read/Write fail (net.Conn contract)", run: caseCloseLocal},
	{name: "reset", what: "Reset → blocked Read/Write on both sides and later calls fail (not EOF)", needs: []feature{featReset}, run: caseReset},
	{name: "goaway", what: "after GoAway the peer cannot open streams; existing ones work", needs: []feature{featGoAway, featPing}, run: caseGoAway},
	{name: "ping", what: "Ping from both sides returns an RTT", needs: []feature{featPing}, run: casePing},
	{name: "num_streams", what: "NumStreams counts open streams and drops to 0 after Close", run: caseNumStreams},
	{name: "accept_backlog", what: "server never accepts: Opens beyond its backlog are refused or wait (giving up with their context, leaving nothing behind); the session still works", run: caseAcceptBacklog},
	{name: "session_close", what: "Session.Close: blocked calls on both sides return within 1 s", run: caseSessionClose},
	{name: "conn_dies", what: "connection cut: blocked calls on both sides return errors within 1 s", run: caseConnDies},
	{name: "conn_dies_not_eof", what: "connection cut: stream Reads report an error, not a clean io.EOF", run: caseConnDiesNotEOF},
}

func init() {
	for _, name := range []string{"BasicIO", "PingPong", "RacyRead", "RacyWrite", "ReadTimeout", "WriteTimeout",
		"PastTimeout", "PresentTimeout", "FutureTimeout", "CloseTimeout", "ConcurrentMethods"} {
		suiteCases = append(suiteCases, suiteCase{
			name:    "nettest_" + name,
			what:    "golang.org/x/net/nettest.TestConn/" + name,
			timeout: 15 * time.Second, // nettest's own limit is 1 minute
			nettest: name,
			run:     caseNettest,
		})
	}
}

func caseOpenAccept(t *testing.T, m *muxer) {
	p := newPair(t, m)
	for _, dir := range []struct {
		name           string
		opener, accept muxSession
	}{{"client→server", p.client, p.server}, {"server→client", p.server, p.client}} {
		ctx := timeoutCtx(t, 5*time.Second)
		a, err := dir.opener.Open(ctx)
		if err != nil {
			t.Fatalf("%s: Open: %v", dir.name, err)
		}
		defer a.Close()
		if _, err := a.Write([]byte("hi")); err != nil {
			t.Fatalf("%s: Write: %v", dir.name, err)
		}
		b, err := dir.accept.Accept(ctx)
		if err != nil {
			t.Fatalf("%s: Accept: %v", dir.name, err)
		}
		defer b.Close()
		buf := make([]byte, 2)
		b.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(b, buf); err != nil || string(buf) != "hi" {
			t.Fatalf("%s: read %q, %v; want \"hi\"", dir.name, buf, err)
		}
	}
}

func caseEcho(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, s := p.streams(t)
	go func() {
		io.Copy(s, s)
		s.Close()
	}()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	for _, n := range []int{1, 2, 100, 1500, 4096, 65535, 65536, 65537, 100_000, 256 << 10} {
		msg := patternBlock[n : 2*n]
		// Write while reading: a message larger than the windows on the
		// way cannot be written whole before the echo is read.
		wr := async(func() error { _, err := c.Write(msg); return err })
		got := make([]byte, n)
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("reading echo of %d bytes: %v", n, err)
		}
		if err := <-wr; err != nil {
			t.Fatalf("Write %d bytes: %v", n, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes differs", n)
		}
	}
}

func caseHalfClose(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, s := p.streams(t)
	const n = 300 << 10
	c.SetDeadline(time.Now().Add(10 * time.Second))
	s.SetDeadline(time.Now().Add(10 * time.Second))
	done := async(func() error {
		got, err := io.ReadAll(s) // ends only at the client's FIN
		if err != nil {
			return fmt.Errorf("server ReadAll: %w", err)
		}
		if !bytes.Equal(got, patternBlock[:n]) {
			return fmt.Errorf("server got %d bytes, want the %d sent", len(got), n)
		}
		if _, err := s.Write([]byte(fmt.Sprintf("got %d", len(got)))); err != nil {
			return fmt.Errorf("server Write after peer's half-close: %w", err)
		}
		return s.Close()
	})
	if _, err := c.Write(patternBlock[:n]); err != nil {
		t.Fatal(err)
	}
	if err := m.closeWrite(c); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Write after CloseWrite succeeded")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Let the reply and the server's FIN reach the client before it
	// reads: a round trip on a second stream, sent after them, has.
	c2, s2 := p.streams(t)
	go io.CopyN(s2, s2, 1)
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c2, make([]byte, 1)); err != nil {
		t.Fatalf("round trip on a second stream: %v", err)
	}
	reply, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("client reading reply after its CloseWrite: %v", err)
	}
	if want := fmt.Sprintf("got %d", n); string(reply) != want {
		t.Fatalf("reply %q, want %q (a reply that arrived before the peer's FIN must survive it)", reply, want)
	}
}

func caseLargeTransfer(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, s := p.streams(t)
	type result struct {
		sum [32]byte
		err error
	}
	send := func(w net.Conn, chunk int) <-chan result {
		ch := make(chan result, 1)
		go func() {
			sum, err := sendPattern(w, 0, largeSize, chunk)
			ch <- result{sum, err}
		}()
		return ch
	}
	recv := func(r net.Conn) <-chan result {
		ch := make(chan result, 1)
		go func() {
			sum, err := recvHash(r, largeSize)
			ch <- result{sum, err}
		}()
		return ch
	}
	c.SetDeadline(time.Now().Add(80 * time.Second))
	s.SetDeadline(time.Now().Add(80 * time.Second))
	cs, ss := send(c, 128<<10), send(s, 1<<20+3)
	sr, cr := recv(s), recv(c)
	for _, pair := range []struct {
		dir        string
		sent, recv <-chan result
	}{{"client→server", cs, sr}, {"server→client", ss, cr}} {
		a, b := <-pair.sent, <-pair.recv
		if a.err != nil || b.err != nil {
			t.Fatalf("%s: send: %v, receive: %v", pair.dir, a.err, b.err)
		}
		if a.sum != b.sum {
			t.Fatalf("%s: checksum of %d bytes differs", pair.dir, largeSize)
		}
	}
}

func caseParallelBulk(t *testing.T, m *muxer) {
	p := newPair(t, m)
	const streams, size = 8, 16 << 20
	var wg sync.WaitGroup
	errs := make(chan error, 4*streams)
	for i := range streams {
		c, s := p.streams(t)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		s.SetDeadline(time.Now().Add(30 * time.Second))
		for _, dir := range []struct {
			name string
			w, r net.Conn
		}{{"client→server", c, s}, {"server→client", s, c}} {
			// Each stream and direction sends a different part of the
			// pattern, so bytes delivered to the wrong stream show.
			off := (2*i + len(dir.name)) * 4099
			var sent, got [32]byte
			var serr, rerr error
			var pair sync.WaitGroup
			pair.Go(func() { sent, serr = sendPattern(dir.w, off, size, 100<<10) })
			pair.Go(func() { got, rerr = recvHash(dir.r, size) })
			wg.Go(func() {
				pair.Wait()
				switch {
				case serr != nil || rerr != nil:
					errs <- fmt.Errorf("stream %d %s: send: %v, receive: %v", i, dir.name, serr, rerr)
				case sent != got:
					errs <- fmt.Errorf("stream %d %s: checksum of %d bytes differs", i, dir.name, size)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// echoServer accepts streams until the session ends and echoes each
// until its EOF.
func echoServer(srv muxSession) {
	for {
		s, err := srv.Accept(context.Background())
		if err != nil {
			return
		}
		go func() {
			io.Copy(s, s)
			s.Close()
		}()
	}
}

// caseConcurrentStreams has 1 000 streams open at the same time, each
// echoing 4 KiB once while others are being opened and again once all
// are open. Opens are paced (at most 64 whose first echo is pending) so
// no muxer's accept backlog is the limit; open_burst is the unpaced
// version.
func caseConcurrentStreams(t *testing.T, m *muxer) {
	p := newPair(t, m)
	const size = 4 << 10
	go echoServer(p.server)
	ctx := timeoutCtx(t, 60*time.Second)
	pace := make(chan struct{}, 64)
	var allOpen, wg sync.WaitGroup
	allOpen.Add(concurrentStreams)
	errs := make(chan error, concurrentStreams)
	echo := func(c net.Conn, msg []byte) error {
		wr := async(func() error { _, err := c.Write(msg); return err })
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return fmt.Errorf("reading echo: %w", err)
		}
		if err := <-wr; err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return errors.New("wrong echo")
		}
		return nil
	}
	for i := range concurrentStreams {
		wg.Go(func() {
			err := func() error {
				pace <- struct{}{}
				c, err := p.client.Open(ctx)
				if err == nil {
					defer c.Close()
					c.SetDeadline(time.Now().Add(60 * time.Second))
					err = echo(c, patternBlock[i:i+size]) // the server has accepted it
				}
				<-pace
				allOpen.Done()
				if err != nil {
					return fmt.Errorf("first echo: %w", err)
				}
				allOpen.Wait() // every stream is open now
				if err := echo(c, patternBlock[2*i:2*i+size]); err != nil {
					return fmt.Errorf("second echo: %w", err)
				}
				return nil
			}()
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	checkStreamErrors(t, errs)
}

func checkStreamErrors(t *testing.T, errs chan error) {
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d streams failed", n, concurrentStreams)
	}
}

// caseOpenBurst opens 1 000 streams at once while the server accepts as
// fast as it can: every one must succeed (Open may wait).
func caseOpenBurst(t *testing.T, m *muxer) {
	p := newPair(t, m)
	const size = 1 << 10
	go echoServer(p.server)
	ctx := timeoutCtx(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, concurrentStreams)
	for i := range concurrentStreams {
		wg.Go(func() {
			err := func() error {
				c, err := p.client.Open(ctx)
				if err != nil {
					return fmt.Errorf("Open: %w", err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				msg := patternBlock[i : i+size]
				if _, err := c.Write(msg); err != nil {
					return fmt.Errorf("Write: %w", err)
				}
				got := make([]byte, size)
				if _, err := io.ReadFull(c, got); err != nil {
					return fmt.Errorf("Read: %w", err)
				}
				if !bytes.Equal(got, msg) {
					return errors.New("wrong echo")
				}
				return nil
			}()
			if err != nil {
				errs <- fmt.Errorf("stream %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	checkStreamErrors(t, errs)
}

// caseAcceptorWritesFirst: the accepting side speaks first (as SMTP or
// SSH servers do), on 1 000 streams, 50 at a time.
func caseAcceptorWritesFirst(t *testing.T, m *muxer) {
	p := newPair(t, m)
	go func() {
		for {
			s, err := p.server.Accept(context.Background())
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				s.Write([]byte("220 ready"))
			}()
		}
	}()
	ctx := timeoutCtx(t, 30*time.Second)
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	errs := make(chan error, concurrentStreams)
	for i := range concurrentStreams {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := p.client.Open(ctx)
			if err != nil {
				errs <- fmt.Errorf("stream %d: Open: %w", i, err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "220 ready" {
				errs <- fmt.Errorf("stream %d: read %q, %v; want \"220 ready\" then EOF", i, got, err)
			}
		})
	}
	wg.Wait()
	checkStreamErrors(t, errs)
}

func caseReadDeadline(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, s := p.streams(t)
	const d = 50 * time.Millisecond
	start := time.Now()
	c.SetReadDeadline(start.Add(d))
	n, err := c.Read(make([]byte, 1))
	took := time.Since(start)
	if n != 0 || !isTimeout(err) {
		t.Fatalf("Read past deadline = %d, %v; want a timeout net.Error", n, err)
	}
	if took < d-time.Millisecond || took > d+time.Second {
		t.Fatalf("Read returned after %v with a %v deadline", took, d)
	}
	// The stream still works once the deadline is cleared.
	c.SetReadDeadline(time.Time{})
	go s.Write([]byte("late"))
	buf := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "late" {
		t.Fatalf("Read after a timeout: %q, %v", buf, err)
	}
}

func caseWriteDeadline(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, _ := p.streams(t) // the server never reads
	const d = 200 * time.Millisecond
	start := time.Now()
	c.SetWriteDeadline(start.Add(d))
	chunk := patternBlock[:64<<10]
	var sent int64
	var err error
	for sent < 256<<20 {
		var n int
		n, err = c.Write(chunk)
		sent += int64(n)
		if err != nil {
			break
		}
	}
	took := time.Since(start)
	switch {
	case err == nil:
		t.Fatalf("wrote %d MiB to a stream nobody reads without blocking: no flow control", sent>>20)
	case !isTimeout(err):
		t.Fatalf("Write past deadline: %v; want a timeout net.Error", err)
	case took > d+time.Second:
		t.Fatalf("Write returned %v after a %v deadline", took, d)
	}
	t.Logf("%d KiB buffered before Write blocked", sent>>10)
}

func caseDeadlineErrorIs(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, _ := p.streams(t)
	c.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := c.Read(make([]byte, 1))
	if !isDeadlineExceeded(err) {
		t.Errorf("Read past deadline: %v (%T); want errors.Is(err, os.ErrDeadlineExceeded)", err, err)
	}
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	_, err = c.Write([]byte("x"))
	if !isDeadlineExceeded(err) {
		t.Errorf("Write past deadline: %v (%T); want errors.Is(err, os.ErrDeadlineExceeded)", err, err)
	}
}

func caseCloseEOF(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, s := p.streams(t)
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "last words" {
		t.Fatalf("peer read %q, %v; want \"last words\" then io.EOF", got, err)
	}
}

func caseCloseLocal(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, _ := p.streams(t)
	rd := async(func() error { _, err := c.Read(make([]byte, 1)); return err })
	time.Sleep(10 * time.Millisecond) // let Read block; if it has not, it starts after Close and must fail too
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err, ok := waitErr(rd, time.Second); !ok {
		t.Error("Read blocked before Close still blocked 1 s after it")
	} else if err == nil {
		t.Error("Read blocked before Close returned no error")
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	rd = async(func() error { _, err := c.Read(make([]byte, 1)); return err })
	if err, ok := waitErr(rd, time.Second); !ok {
		t.Error("Read after Close blocks")
	} else if err == nil {
		t.Error("Read after Close succeeded")
	}
}

func caseReset(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, s := p.streams(t)
	// Writes blocked on flow control on both sides (nobody reads yet).
	bigLocal := async(func() error { _, err := c.Write(make([]byte, 16<<20)); return err })
	bigPeer := async(func() error { _, err := s.Write(make([]byte, 16<<20)); return err })
	time.Sleep(20 * time.Millisecond) // let the Writes block; if they have not, they start after Reset and must fail too
	if err := m.reset(c); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	for name, ch := range map[string]<-chan error{"own": bigLocal, "peer's": bigPeer} {
		if err, ok := waitErr(ch, time.Second); !ok {
			t.Errorf("%s Write blocked before Reset still blocked 1 s after it", name)
		} else if err == nil {
			t.Errorf("%s Write of 16 MiB blocked before Reset returned no error: the unsent bytes were dropped silently", name)
		}
	}
	// The peer may still read what arrived before the reset, then fails.
	rd := async(func() error {
		buf := make([]byte, 64<<10)
		for {
			if _, err := s.Read(buf); err != nil {
				return err
			}
		}
	})
	err, ok := waitErr(rd, time.Second)
	switch {
	case !ok:
		t.Fatal("peer's Read still blocked 1 s after Reset")
	case err == io.EOF:
		t.Fatalf("peer's Read after Reset = io.EOF; want an error: a reset must not look like a clean end")
	}
	t.Logf("peer's Read after reset: %v", err)
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("peer's Write after Reset succeeded")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Errorf("own Read after Reset = %v; want an error", err)
	}
}

func caseGoAway(t *testing.T, m *muxer) {
	p := newPair(t, m)
	c, s := p.streams(t)
	if err := p.server.GoAway(); err != nil {
		t.Fatalf("GoAway: %v", err)
	}
	// A round trip after the GOAWAY: the client has read it by now.
	if _, err := p.client.Ping(timeoutCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("Ping after GoAway: %v", err)
	}
	if st, err := p.client.Open(timeoutCtx(t, time.Second)); err == nil {
		// A muxer may let Open succeed and refuse the stream; the
		// stream must then fail, and the server must not accept it.
		st.Write([]byte("x"))
		st.SetReadDeadline(time.Now().Add(time.Second))
		_, rerr := st.Read(make([]byte, 1))
		if rerr == nil || isTimeout(rerr) {
			t.Errorf("stream opened after GoAway works (Read: %v)", rerr)
		}
	}
	if st, err := p.server.Accept(timeoutCtx(t, 100*time.Millisecond)); err == nil {
		t.Errorf("server accepted stream after its GoAway: %v", st)
	}
	// The stream opened before still works both ways.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	s.SetDeadline(time.Now().Add(5 * time.Second))
	go s.Write([]byte("pong"))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("Write on existing stream after GoAway: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q, %v after GoAway", buf, err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q, %v after GoAway", buf, err)
	}
}

func casePing(t *testing.T, m *muxer) {
	p := newPair(t, m)
	for name, s := range map[string]muxSession{"client": p.client, "server": p.server} {
		rtt, err := s.Ping(timeoutCtx(t, 5*time.Second))
		if err != nil || rtt <= 0 || rtt > time.Second {
			t.Errorf("%s Ping = %v, %v; want 0 < rtt < 1s", name, rtt, err)
		}
	}
}

func caseNumStreams(t *testing.T, m *muxer) {
	p := newPair(t, m)
	const n = 10
	var cs, ss []net.Conn
	for range n {
		c, s := p.streams(t)
		cs, ss = append(cs, c), append(ss, s)
	}
	if got := p.client.NumStreams(); got != n {
		t.Errorf("client NumStreams = %d with %d open", got, n)
	}
	if got := p.server.NumStreams(); got != n {
		t.Errorf("server NumStreams = %d with %d open", got, n)
	}
	for i := range n {
		cs[i].Close()
		ss[i].Close()
	}
	if !poll(2*time.Second, func() bool { return p.client.NumStreams() == 0 && p.server.NumStreams() == 0 }) {
		t.Errorf("2 s after closing all streams on both sides NumStreams = %d (client), %d (server)",
			p.client.NumStreams(), p.server.NumStreams())
	}
}

// caseAcceptBacklog: the server never accepts while the client opens
// more streams than the server's accept backlog. The server must not
// hold more than its backlog: an Open beyond it is refused (an error
// from Open or on the stream within 1 s) or waits for room, giving up
// when its context ends without leaving a stream behind. The session
// keeps working.
func caseAcceptBacklog(t *testing.T, m *muxer) {
	p := newPair(t, m)
	const extra = 32
	n := m.backlog + extra
	ctx := timeoutCtx(t, time.Second)
	streams := make([]net.Conn, n)
	fate := make([]error, n) // nil: queued (no error seen)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := p.client.Open(ctx)
			if err != nil {
				fate[i] = fmt.Errorf("Open: %w", err)
				return
			}
			streams[i] = c
			var tag [2]byte
			binary.BigEndian.PutUint16(tag[:], uint16(i))
			if _, err := c.Write(tag[:]); err != nil {
				fate[i] = fmt.Errorf("Write: %w", err)
				return
			}
			// A refusal arrives within a round trip; a queued stream
			// sees nothing.
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
				fate[i] = fmt.Errorf("Read: %w", err)
			}
			c.SetReadDeadline(time.Time{})
		})
	}
	wg.Wait()
	var refused, queued, waited int
	for i := range n {
		switch err := fate[i]; {
		case err == nil:
			queued++
		case errors.Is(err, context.DeadlineExceeded):
			waited++
		default:
			refused++
		}
	}
	t.Logf("backlog %d, %d opened: %d refused, %d queued, %d Opens waited until their context ended", m.backlog, n, refused, queued, waited)
	if queued > m.backlog || refused+waited < extra {
		t.Errorf("%d streams queued for a backlog of %d (%d refused, %d waited; want ≥ %d)", queued, m.backlog, refused, waited, extra)
	}
	// The session still works: accept one queued stream and answer it.
	s, err := p.server.Accept(timeoutCtx(t, 2*time.Second))
	if err != nil {
		t.Fatalf("Accept after the overflow: %v", err)
	}
	defer s.Close()
	var tag [2]byte
	s.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(s, tag[:]); err != nil {
		t.Fatalf("reading the accepted stream's tag: %v", err)
	}
	i := int(binary.BigEndian.Uint16(tag[:]))
	if i >= n || streams[i] == nil {
		t.Fatalf("accepted stream has tag %d", i)
	}
	if _, err := s.Write([]byte("k")); err != nil {
		t.Fatal(err)
	}
	c := streams[i]
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("answer on stream %d after the overflow: %v", i, err)
	}
	// Accepting the rest finds only the queued streams: none from an
	// Open that gave up.
	accepted := 1
	for {
		s, err := p.server.Accept(timeoutCtx(t, 300*time.Millisecond))
		if err != nil {
			break
		}
		s.Close()
		accepted++
	}
	if accepted > queued {
		t.Errorf("the server accepted %d streams, %d more than were opened: Opens that had given up went through later", accepted, accepted-queued)
	}
	for _, c := range streams {
		if c != nil {
			c.Close()
		}
	}
}

// blockedCalls starts calls that block on a healthy pair and returns
// them by name. big is a stream the server never reads, so a large Write
// on it blocks on flow control.
func blockedCalls(t *testing.T, p *testPair) map[string]<-chan error {
	c, s := p.streams(t)
	big, _ := p.streams(t)
	calls := map[string]<-chan error{
		"server Accept": async(func() error { _, err := p.server.Accept(context.Background()); return err }),
		"client Accept": async(func() error { _, err := p.client.Accept(context.Background()); return err }),
		"server Read":   async(func() error { _, err := s.Read(make([]byte, 1)); return readErr(err) }),
		"client Read":   async(func() error { _, err := c.Read(make([]byte, 1)); return readErr(err) }),
		"client Write":  async(func() error { _, err := big.Write(make([]byte, 64<<20)); return err }),
	}
	// Give the calls a moment to block. If one has not yet, it runs
	// after the cut instead, where it must fail just the same.
	time.Sleep(20 * time.Millisecond)
	return calls
}

// errEOF marks a Read that returned a clean io.EOF.
var errEOF = errors.New("io.EOF")

func readErr(err error) error {
	if err == io.EOF {
		return errEOF
	}
	return err
}

// checkUnblocked checks every call returned an error within 1 s, and that
// both sessions report themselves closed. If strictEOF, a Read's io.EOF
// counts as a failure (the data was cut, not ended).
func checkUnblocked(t *testing.T, p *testPair, calls map[string]<-chan error, strictEOF bool) {
	end := time.Now().Add(time.Second)
	for name, ch := range calls {
		err, ok := waitErr(ch, time.Until(end))
		switch {
		case !ok:
			t.Errorf("%s still blocked 1 s later", name)
		case err == nil:
			t.Errorf("%s returned no error", name)
		case strictEOF && errors.Is(err, errEOF):
			t.Errorf("%s returned io.EOF: a cut connection looks like a clean end of stream", name)
		default:
			t.Logf("%s: %v", name, err)
		}
	}
	if strictEOF {
		return
	}
	for name, s := range map[string]muxSession{"client": p.client, "server": p.server} {
		select {
		case <-s.CloseChan():
		case <-time.After(time.Until(end) + 10*time.Millisecond):
			t.Errorf("%s CloseChan not closed 1 s later", name)
		}
		if c, err := s.Open(timeoutCtx(t, time.Second)); err == nil {
			t.Errorf("%s Open succeeded on a dead session", name)
			c.Close()
		}
	}
}

func caseSessionClose(t *testing.T, m *muxer) {
	p := newPair(t, m)
	calls := blockedCalls(t, p)
	if err := p.client.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	checkUnblocked(t, p, calls, false)
}

func caseConnDies(t *testing.T, m *muxer) {
	p := newPair(t, m)
	calls := blockedCalls(t, p)
	p.clientRaw.Close()
	checkUnblocked(t, p, calls, false)
}

func caseConnDiesNotEOF(t *testing.T, m *muxer) {
	p := newPair(t, m)
	calls := blockedCalls(t, p)
	p.clientRaw.Close()
	checkUnblocked(t, p, map[string]<-chan error{"server Read": calls["server Read"], "client Read": calls["client Read"]}, true)
}

func caseNettest(t *testing.T, m *muxer) {
	nettest.TestConn(t, func() (c1, c2 net.Conn, _ func(), err error) {
		markRan() // called only inside the selected nettest subtest
		c, s, err := dialPair()
		if err != nil {
			return nil, nil, nil, err
		}
		cs, ss, err := m.start(c, s)
		if err != nil {
			c.Close()
			s.Close()
			return nil, nil, nil, err
		}
		stop := func() {
			cs.Close()
			ss.Close()
			c.Close()
			s.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if c1, err = cs.Open(ctx); err == nil {
			c2, err = ss.Accept(ctx)
		}
		if err != nil {
			stop()
			return nil, nil, nil, err
		}
		return c1, c2, func() { c1.Close(); c2.Close(); stop() }, nil
	})
}
