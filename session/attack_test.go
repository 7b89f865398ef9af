package session

// Regression tests for issue #13: one test per attack of the issue's
// table (row 6, a Write deadline while its own goroutine writes the
// connection, is tested elsewhere). Each drives a real session from a raw
// peer built on package frame and checks the outcome from outside: the
// heap the session holds, what it sends, what its public API returns.
// SPEC.md §11 states the rules they check.
//
//	row  attack                                      test
//	1    small DATA payloads padded to a large frame TestAttackPaddedData
//	     with an unknown field
//	1b   payloads just above a power of two          TestAttackPayloadRounding
//	2    PING flood, answers never read              TestAttackPingFlood
//	3    SYN flood beyond the limits, RESETs unread  TestAttackSynFlood
//	4    open, FIN, Accept+Close, many times         TestAttackStreamChurn
//	5    compressed Write stuck in the queue with    TestAttackCompressedMaxWindow
//	     the peer's windows at 2^31-1
//	7    rapid reset (SYN then RESET)                TestAttackRapidReset
//	8    compressed payload with bytes after its     TestAttackCompressedTrailing
//	     zstd frame
//
// Memory is measured as the live heap (after two collections, so that
// sync.Pool's caches are emptied) held after the attack minus before it;
// the raw peer keeps no per-frame or per-stream state, so what grows is
// the session's. None of these tests runs in parallel with another.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/braidmux/braid/frame"
)

// attackPeer is a raw braid client for attacks. It performs the HELLO
// exchange reading exactly the session's HELLO and nothing more, then
// either drains everything the session sends, keeping only counters
// (drain), or reads nothing at all unless the test does (a peer that
// never reads its answers). Unlike fakePeer it keeps nothing per frame or
// per stream, so the heap it holds does not grow with an attack.
type attackPeer struct {
	t     testing.TB
	conn  net.Conn       // the peer's end of the connection
	sess  *Session       // the session under attack, a Server
	hello frame.Settings // the session's HELLO
	held  []byte         // bytes read from conn but not parsed (stuckAtMaxCredit)

	wmu sync.Mutex // serializes writes to conn

	mu      sync.Mutex
	resets  map[frame.ErrorCode]int // RESETs received, by code
	acks    map[uint64]bool         // PING ACKs received, by opaque
	readErr error                   // why draining stopped
	done    chan struct{}           // closed when the drain goroutine exits (at once without one)
}

// newAttackPeer starts a Server session with cfg on theirs and does the
// handshake from mine with hello (nil: fakeHello()). It works over
// net.Pipe too: the HELLO is written while the session's is read.
func newAttackPeer(t testing.TB, mine, theirs net.Conn, cfg *Config, hello *frame.Settings, drain bool) *attackPeer {
	t.Helper()
	p := &attackPeer{
		t: t, conn: mine,
		resets: make(map[frame.ErrorCode]int),
		acks:   make(map[uint64]bool),
		done:   make(chan struct{}),
	}
	type res struct {
		s   *Session
		err error
	}
	sc := make(chan res, 1)
	go func() {
		s, err := Server(theirs, cfg)
		sc <- res{s, err}
	}()
	h := fakeHello()
	if hello != nil {
		h = *hello
	}
	wc := make(chan error, 1)
	go func() { wc <- p.write(frame.Frame{Type: frame.Hello, HasSettings: true, Settings: h}) }()
	mine.SetReadDeadline(time.Now().Add(failAfter))
	f, rerr := readFrameExact(mine)
	mine.SetReadDeadline(time.Time{})
	var r res
	select {
	case r = <-sc:
	case <-time.After(failAfter):
		mine.Close()
		t.Fatal("attack peer: Server did not return")
	}
	werr := <-wc
	switch {
	case r.err != nil:
		mine.Close()
		t.Fatalf("attack peer: handshake: %v", r.err)
	case werr != nil:
		r.s.Close()
		mine.Close()
		t.Fatalf("attack peer: writing HELLO: %v", werr)
	case rerr != nil || f.Type != frame.Hello || !f.HasSettings:
		r.s.Close()
		mine.Close()
		t.Fatalf("attack peer: reading the session's HELLO: %v, %v", f, rerr)
	}
	p.sess, p.hello = r.s, f.Settings
	if drain {
		go p.drain()
	} else {
		close(p.done)
	}
	t.Cleanup(func() {
		mine.Close()
		p.sess.Close()
		<-p.done
	})
	return p
}

// readFrameExact reads one frame from r without reading a byte beyond it
// (a frame.Reader reads ahead).
func readFrameExact(r io.Reader) (*frame.Frame, error) {
	var size uint64
	var b [1]byte
	for i := 0; ; i++ {
		if i == frame.MaxLengthPrefix {
			return nil, errors.New("length prefix too long")
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, err
		}
		size |= uint64(b[0]&0x7f) << (7 * i)
		if b[0] < 0x80 {
			break
		}
	}
	if size > frame.MaxMaxFrameSize {
		return nil, fmt.Errorf("frame of %d bytes", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	f := new(frame.Frame)
	if err := frame.Parse(f, body); err != nil {
		return nil, err
	}
	return f, nil
}

// drain reads and counts everything the session sends, answering its
// PINGs as a live peer does.
func (p *attackPeer) drain() {
	defer close(p.done)
	rd := frame.NewReader(p.conn, frame.MaxMaxFrameSize)
	defer rd.Close()
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			p.mu.Lock()
			p.readErr = err
			p.mu.Unlock()
			return
		}
		if f.Type == frame.Ping && !f.Flags.Has(frame.FlagACK) {
			go p.write(frame.Frame{Type: frame.Ping, Flags: frame.FlagACK, Opaque: f.Opaque})
		}
		p.mu.Lock()
		switch f.Type {
		case frame.Reset:
			p.resets[f.ErrorCode]++
		case frame.Ping:
			if f.Flags.Has(frame.FlagACK) {
				p.acks[f.Opaque] = true
			}
		}
		p.mu.Unlock()
	}
}

// write encodes frames and writes them in one Write.
func (p *attackPeer) write(fs ...frame.Frame) error {
	var b []byte
	for i := range fs {
		b = fs[i].Append(b)
	}
	return p.writeRaw(b)
}

// writeRaw writes b as is.
func (p *attackPeer) writeRaw(b []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.conn.SetWriteDeadline(time.Now().Add(failAfter))
	_, err := p.conn.Write(b)
	return err
}

// ping sends a PING and waits for its ACK (the session has then handled
// every frame sent before it), failing the test if the connection ends
// first. Draining peers only.
func (p *attackPeer) ping(opaque uint64) {
	p.t.Helper()
	if err := p.write(frame.Frame{Type: frame.Ping, Opaque: opaque}); err != nil {
		p.t.Fatalf("attack peer: writing PING: %v (session: %v)", err, p.sess.Err())
	}
	p.waitFor(fmt.Sprintf("the ACK of PING %d", opaque), func() bool { return p.acks[opaque] })
}

// waitFor polls cond, called with p.mu held, until it holds; it fails the
// test if draining stops (the connection ended) or failAfter passes first.
func (p *attackPeer) waitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		p.mu.Lock()
		ok, err := cond(), p.readErr
		p.mu.Unlock()
		switch {
		case ok:
			return
		case err != nil:
			p.t.Fatalf("attack peer: connection ended (%v; session: %v) before %s", err, p.sess.Err(), what)
		case time.Now().After(deadline):
			p.t.Fatalf("attack peer: timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// numResets returns how many RESETs with code the session has sent.
func (p *attackPeer) numResets(code frame.ErrorCode) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resets[code]
}

// liveHeap returns the live heap in bytes: HeapAlloc after two full
// collections (the first empties sync.Pool's primary caches into their
// victim caches, the second frees those).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// mib formats a byte count in MiB for logs.
func mib(n int64) string { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

// closeWithin calls s.Close and fails the test unless it returns within d.
func closeWithin(t *testing.T, s *Session, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
		t.Logf("Session.Close returned in %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(d):
		t.Fatalf("Session.Close did not return within %v", d)
	}
}

// --- Rows 1 and 1b: memory held per payload byte ---

// padField is the unknown field number the padding uses.
const padField protowire.Number = 1000

// paddedData returns the wire form of a DATA frame on stream id carrying
// payload, whose body also holds an unknown bytes field of pad bytes:
// after the payload field, or before every other field.
func paddedData(id uint32, payload []byte, pad int, before bool) []byte {
	f := data(id, payload, 0)
	body := f.AppendBody(nil)
	field := protowire.AppendTag(nil, padField, protowire.BytesType)
	field = protowire.AppendBytes(field, make([]byte, pad))
	if before {
		body = append(field, body...)
	} else {
		body = append(body, field...)
	}
	return append(protowire.AppendVarint(nil, uint64(len(body))), body...)
}

// fillWindow opens stream 1 from an attack peer, has the application
// accept it and never read, and sends payload-byte frames (encoded by
// encode) until exactly window bytes of payload wait in the stream. It
// checks the heap the session then holds is at most factor×window plus
// 1 MiB, and that every byte reads back intact.
func fillWindow(t *testing.T, window uint32, payload int, encode func(p []byte) []byte, factor float64) {
	cfg := &Config{InitialStreamWindow: window, MaxStreamWindow: window, MaxSessionWindow: window}
	mine, theirs := tcpPair(t)
	p := newAttackPeer(t, mine, theirs, cfg, nil, true)
	if err := p.write(syn(1, nil, 0)); err != nil {
		t.Fatal(err)
	}
	st := accept(t, p.sess)

	// Every full frame is the same bytes: write batches of about 1 MiB.
	content := pattern(13, payload)
	one := encode(content)
	n, rem := int(window)/payload, int(window)%payload
	k := max(1, (1<<20)/len(one))
	batch := make([]byte, 0, k*len(one))
	for range k {
		batch = append(batch, one...)
	}
	var last []byte
	if rem > 0 {
		last = encode(content[:rem])
	}

	before := liveHeap()
	start := time.Now()
	for sent := 0; sent < n; {
		b := batch
		if n-sent < k {
			b = batch[:(n-sent)*len(one)]
		}
		if err := p.writeRaw(b); err != nil {
			t.Fatalf("after %d frames: %v (session: %v)", sent, err, p.sess.Err())
		}
		sent += len(b) / len(one)
	}
	if last != nil {
		if err := p.writeRaw(last); err != nil {
			t.Fatal(err)
		}
	}
	p.ping(1) // every frame has been handled
	elapsed := time.Since(start)
	if p.sess.IsClosed() {
		t.Fatalf("session closed: %v", p.sess.Err())
	}
	if got := p.sess.Stats().DataReceived; got != uint64(window) {
		t.Fatalf("DataReceived = %d, want the window, %d", got, window)
	}
	held := liveHeap() - before
	runtime.KeepAlive(batch)
	runtime.KeepAlive(last)
	limit := int64(factor*float64(window)) + 1<<20
	t.Logf("%d frames of %d payload bytes (%d on the wire each) in %v: heap held %s for %s of payload (%.2f×); limit %s",
		n, payload, len(one), elapsed.Round(time.Millisecond), mib(held), mib(int64(window)), float64(held)/float64(window), mib(limit))
	if held > limit {
		t.Errorf("the session holds %s for a %s window: more than %.1f× the window + 1 MiB", mib(held), mib(int64(window)), factor)
	}

	// The data is all there, in order.
	got := readN(t, st, int(window))
	for off := 0; off < len(got); off += payload {
		end := min(off+payload, len(got))
		if string(got[off:end]) != string(content[:end-off]) {
			t.Fatalf("data corrupted at offset %d", off)
		}
	}
}

// TestAttackPaddedData (issue #13 row 1): DATA frames whose 2 KiB payload
// sits in a ~62 KiB body padded with an unknown field, up to the full
// window, with an application that never reads. Unknown fields are
// skipped (SPEC.md §2.3), so the session stays up; it must hold memory
// for the payload bytes, not for the frames they came in.
func TestAttackPaddedData(t *testing.T) {
	const window = 1 << 20
	const payload = 2 << 10
	const pad = 60 << 10
	for _, before := range []bool{false, true} {
		name := "PadAfterPayload"
		if before {
			name = "PadBeforePayload"
		}
		t.Run(name, func(t *testing.T) {
			fillWindow(t, window, payload, func(p []byte) []byte { return paddedData(1, p, pad, before) }, 2)
		})
	}
}

// TestAttackPayloadRounding (issue #13 row 1b): payloads of 2049 bytes,
// one above a power of two, up to the full window, with an application
// that never reads: buffers must be sized to the payload, not rounded up
// (which doubles the memory held per window).
func TestAttackPayloadRounding(t *testing.T) {
	// A window large enough that 1 MiB of slack does not hide a doubling.
	const window = 8 << 20
	fillWindow(t, window, 2049, func(p []byte) []byte { return frameBytes(data(1, p, 0)) }, 1.5)
}

// --- Rows 2 and 3: control-frame floods from a peer that never reads ---

const (
	floodFor       = 2 * time.Second // how long the attacker writes
	floodMaxFrames = 5_000_000       // and at most this many frames
	floodHeapLimit = 32 << 20        // the session's heap growth during the flood
	floodAbort     = 4 * floodHeapLimit
	floodWriteTO   = time.Second // the victim's ConnectionWriteTimeout
)

// flood attacks a Server session with cfg (its ConnectionWriteTimeout
// floodWriteTO) from a peer that writes the frames next appends, as fast
// as it can, for floodFor or floodMaxFrames, and never reads. It samples
// the session's heap growth during the flood and checks it stays below
// floodHeapLimit; if the session ends, it must do so within
// ConnectionWriteTimeout+2 s of the attacker's last write going through;
// then Session.Close must return within 2 s.
func flood(t *testing.T, cfg *Config, next func(b []byte, i int) []byte) {
	cfg.ConnectionWriteTimeout = floodWriteTO
	mine, theirs := tcpPair(t)
	p := newAttackPeer(t, mine, theirs, cfg, nil, false)

	var endedAt atomic.Int64 // when the session ended, UnixNano
	var watch sync.WaitGroup
	stopWatch := make(chan struct{})
	watch.Go(func() {
		select {
		case <-p.sess.CloseChan():
			endedAt.Store(time.Now().UnixNano())
		case <-stopWatch:
		}
	})
	defer func() { close(stopWatch); watch.Wait() }()

	before := liveHeap()
	start := time.Now()
	var (
		frames    atomic.Int64 // frames written whole
		lastWrite atomic.Int64 // when the last Write returned without error, UnixNano
		attackErr error        // why the attacker stopped early
	)
	lastWrite.Store(start.UnixNano())
	attackDone := make(chan struct{})
	go func() {
		defer close(attackDone)
		mine.SetWriteDeadline(start.Add(floodFor))
		buf := make([]byte, 0, 64<<10)
		i := 0
		for i < floodMaxFrames && time.Since(start) < floodFor {
			buf = buf[:0]
			first := i
			for len(buf) < 60<<10 && i < floodMaxFrames {
				buf = next(buf, i)
				i++
			}
			if _, err := mine.Write(buf); err != nil {
				attackErr = err
				return
			}
			frames.Add(int64(i - first))
			lastWrite.Store(time.Now().UnixNano())
		}
	}()

	var maxGrowth int64
	sample := func() {
		if g := liveHeap() - before; g > maxGrowth {
			maxGrowth = g
		}
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	aborted := false
sampling:
	for {
		select {
		case <-attackDone:
			break sampling
		case <-tick.C:
			sample()
			if maxGrowth > floodAbort && !aborted {
				aborted = true
				mine.SetWriteDeadline(time.Now()) // stop the attacker: enough is known
			}
		}
	}
	sample()
	last := time.Unix(0, lastWrite.Load())
	blocked := errors.Is(attackErr, os.ErrDeadlineExceeded)
	t.Logf("attacker wrote %d frames in %v (last write through at +%v); stopped by: %v",
		frames.Load(), time.Since(start).Round(time.Millisecond), last.Sub(start).Round(time.Millisecond), attackErr)

	// If the attacker's writes blocked (the session stopped reading), the
	// session's own writes are stuck too: it may end once its
	// ConnectionWriteTimeout passes, or stay up with bounded memory.
	if blocked && !p.sess.IsClosed() {
		select {
		case <-p.sess.CloseChan():
		case <-time.After(time.Until(last.Add(floodWriteTO + 2*time.Second))):
		}
		sample()
	}
	if at := endedAt.Load(); at != 0 {
		end := time.Unix(0, at)
		t.Logf("session ended at +%v, %v after the attacker's last write went through: %v",
			end.Sub(start).Round(time.Millisecond), end.Sub(last).Round(time.Millisecond), p.sess.Err())
		if end.Sub(last) > floodWriteTO+2*time.Second {
			t.Errorf("session ended %v after the attacker's writes stopped going through; want within ConnectionWriteTimeout (%v) + 2 s",
				end.Sub(last).Round(time.Millisecond), floodWriteTO)
		}
	} else {
		t.Logf("session still up: %d frames received", p.sess.Stats().FramesReceived)
	}
	t.Logf("max heap growth during the flood: %s (limit %s)", mib(maxGrowth), mib(floodHeapLimit))
	if maxGrowth >= floodHeapLimit {
		t.Errorf("the session's heap grew by %s during the flood; want < %s", mib(maxGrowth), mib(floodHeapLimit))
	}
	closeWithin(t, p.sess, 2*time.Second)
}

// TestAttackPingFlood (issue #13 row 2): a peer writes PINGs as fast as
// it can and never reads the ACKs.
func TestAttackPingFlood(t *testing.T) {
	flood(t, &Config{}, func(b []byte, i int) []byte {
		f := frame.Frame{Type: frame.Ping, Opaque: uint64(i) + 1}
		return f.Append(b)
	})
}

// TestAttackSynFlood (issue #13 row 3): a peer opens streams as fast as
// it can, far beyond MaxIncomingStreams and AcceptBacklog, and never
// reads the RESETs that refuse them.
func TestAttackSynFlood(t *testing.T) {
	flood(t, &Config{MaxIncomingStreams: 16, AcceptBacklog: 16}, func(b []byte, i int) []byte {
		f := syn(uint32(2*i+1), nil, 0)
		return f.Append(b)
	})
}

// --- Row 4: streams that finish cost nothing once gone ---

// TestAttackStreamChurn (issue #13 row 4): the peer opens a stream and
// finishes its side at once (SYN|FIN), the application accepts it and
// closes it, over and over, with the default StreamCloseTimeout. Each
// stream is then finished on both sides and must leave nothing behind
// (such as a StreamCloseTimeout timer holding it for minutes).
func TestAttackStreamChurn(t *testing.T) {
	cycles := 20_000
	if raceEnabled {
		cycles = 5_000
	}
	const batch = 100
	mine, theirs := tcpPair(t)
	p := newAttackPeer(t, mine, theirs, nil, nil, true)
	next := uint32(1)
	run := func(n int) { churn(t, p, &next, n) }
	gone := func() bool { return p.sess.NumStreams() == 0 }
	run(batch) // warm up: pools, maps, the accept queue
	eventually(t, "the warm-up streams to be forgotten", gone)
	before := liveHeap()
	start := time.Now()
	for done := 0; done < cycles; done += batch {
		run(batch)
	}
	eventually(t, "every stream to be forgotten", gone)
	p.ping(1)
	held := liveHeap() - before
	per := float64(held) / float64(cycles)
	t.Logf("%d streams opened, finished and closed in %v: heap held %s, %.0f B per stream",
		cycles, time.Since(start).Round(time.Millisecond), mib(held), per)
	if p.sess.IsClosed() {
		t.Fatalf("session closed: %v", p.sess.Err())
	}
	if per >= 100 {
		t.Errorf("%.0f B of heap held per finished stream; want < 100", per)
	}
}

// churn has the peer open n streams finished at once (SYN|FIN), on IDs
// from *next on, and the application accept and close each.
func churn(t *testing.T, p *attackPeer, next *uint32, n int) {
	t.Helper()
	var b []byte
	for range n {
		f := syn(*next, nil, frame.FlagFIN)
		b = f.Append(b)
		*next += 2
	}
	if err := p.writeRaw(b); err != nil {
		t.Fatalf("writing SYNs: %v (session: %v)", err, p.sess.Err())
	}
	for range n {
		accept(t, p.sess).Close()
	}
}

// --- Row 5: a compressed Write dropped from the queue at maximum credit ---

// maxCredit is the largest flow-control window, 2^31-1.
const maxCredit = 1<<31 - 1

// stuckAtMaxCredit sets up row 5 over net.Pipe (writes block until read:
// nothing is buffered): a Server session with compression, stream 1
// opened by the peer and accepted, the stream's and the session's send
// credit raised to exactly 2^31-1, and a write to the connection in
// progress that stays stuck (the peer reads its first byte and no more)
// until the session's write timeout.
func stuckAtMaxCredit(t *testing.T) (*attackPeer, *Stream) {
	t.Helper()
	mine, theirs := net.Pipe()
	hello := zstdHello()
	p := newAttackPeer(t, mine, theirs, &Config{Compression: CompressionZstd}, hello, false)
	if got := p.sess.Compression(); got != CompressionZstd {
		t.Fatalf("compression %v, want zstd", got)
	}
	if err := p.write(
		syn(1, nil, 0),
		frame.Frame{Type: frame.WindowUpdate, StreamID: 1, WindowDelta: maxCredit - hello.InitialWindow},
		frame.Frame{Type: frame.WindowUpdate, WindowDelta: maxCredit - hello.SessionWindow},
		frame.Frame{Type: frame.Ping, Opaque: 1},
	); err != nil {
		t.Fatal(err)
	}
	st := accept(t, p.sess)

	// Read up to the ACK of PING 1: the WINDOW_UPDATEs before it have
	// been applied.
	mine.SetReadDeadline(time.Now().Add(failAfter))
	for {
		f, err := readFrameExact(mine)
		if err != nil {
			t.Fatalf("reading the session's frames: %v (session: %v)", err, p.sess.Err())
		}
		if f.Type == frame.GoAway {
			t.Fatalf("session sent %v", f)
		}
		if f.Type == frame.Ping && f.Flags.Has(frame.FlagACK) && f.Opaque == 1 {
			break
		}
	}
	// Another PING, and one byte of what the session writes next: a
	// write to the connection is now in progress, and stays stuck.
	if err := p.write(frame.Frame{Type: frame.Ping, Opaque: 2}); err != nil {
		t.Fatal(err)
	}
	p.held = make([]byte, 1)
	if _, err := io.ReadFull(mine, p.held); err != nil {
		t.Fatalf("reading the start of the session's next write: %v", err)
	}
	mine.SetReadDeadline(time.Time{})
	return p, st
}

// TestAttackCompressedMaxWindow (issue #13 row 5): compression on both
// sides; the peer raises the stream's and the session's send credit to
// exactly 2^31-1 and stops reading; a compressible Write with a short
// deadline is queued behind a connection write that cannot finish. The
// Write must fail with a timeout, and Session.Close must still return
// promptly. Giving the dropped frame's credit back must not push a window
// past 2^31-1: the flow-control arithmetic panics on a broken invariant,
// which would kill the test process.
//
// Queued: the credit is at 2^31-1 when the Write takes its share.
// RefilledWhileQueued (fake time, so that the peer acts at a known point):
// once the Write has taken its credit and waits, the peer grants that
// much again, bringing the credit back to exactly 2^31-1 before the
// dropped frame's credit is returned. (A session that did not count the
// queued frame against its credit may instead end with
// FLOW_CONTROL_ERROR: from its books the peer overran 2^31-1.)
func TestAttackCompressedMaxWindow(t *testing.T) {
	const deadline = 100 * time.Millisecond

	t.Run("Queued", func(t *testing.T) {
		p, st := stuckAtMaxCredit(t)
		msg := jsonLogs(5, 32<<10)
		rc := make(chan result, 1)
		start := time.Now()
		st.SetWriteDeadline(start.Add(deadline))
		go func() { n, err := st.Write(msg); rc <- result{n: n, err: err, write: true} }()
		r := waitResult(t, rc, failAfter, "the compressed Write")
		took := time.Since(start)
		t.Logf("Write returned %d, %v after %v", r.n, r.err, took.Round(time.Millisecond))
		wantTimeout(t, "compressed Write behind a stuck connection", r.err)
		if took > deadline+2*time.Second {
			t.Errorf("Write returned %v after its deadline; want within 2 s", (took - deadline).Round(time.Millisecond))
		}
		closeWithin(t, p.sess, 2*time.Second)
	})

	t.Run("RefilledWhileQueued", func(t *testing.T) {
		// Compress once outside the bubble: the shared zstd encoder
		// makes its channels on first use, and a channel made in a
		// bubble cannot be used outside it afterwards.
		c, s := sessionPair(t, &Config{Compression: CompressionZstd}, &Config{Compression: CompressionZstd})
		warm := jsonLogs(6, 8<<10)
		if _, err := open(t, c).Write(warm); err != nil {
			t.Fatal(err)
		}
		if got := readN(t, accept(t, s), len(warm)); string(got) != string(warm) {
			t.Fatal("warm-up transfer corrupted")
		}

		synctest.Test(t, func(t *testing.T) {
			p, st := stuckAtMaxCredit(t)
			// Small enough to be one compressed frame in any design.
			msg := jsonLogs(5, 4<<10)
			rc := make(chan result, 1)
			start := time.Now()
			st.SetWriteDeadline(start.Add(deadline))
			go func() { n, err := st.Write(msg); rc <- result{n: n, err: err, write: true} }()
			synctest.Wait() // the Write has compressed, taken its credit, queued, and waits
			if err := p.write(frame.Frame{Type: frame.WindowUpdate, StreamID: 1, WindowDelta: uint32(len(msg))}); err != nil {
				t.Fatalf("writing WINDOW_UPDATE: %v (session: %v)", err, p.sess.Err())
			}
			synctest.Wait() // applied
			var r result
			select {
			case r = <-rc:
				t.Fatalf("Write returned %d, %v before its deadline", r.n, r.err)
			default:
			}
			time.Sleep(deadline)
			synctest.Wait()
			select {
			case r = <-rc:
			default:
				t.Fatal("Write still blocked after its deadline")
			}
			t.Logf("Write returned %d, %v after %v (fake time); session: %v", r.n, r.err, time.Since(start), p.sess.Err())
			var pe *ProtocolError
			if errors.As(p.sess.Err(), &pe) {
				if pe.Code != frame.FlowControlError || pe.Remote {
					t.Fatalf("session ended with %v; want it up, or FLOW_CONTROL_ERROR", p.sess.Err())
				}
			} else {
				wantTimeout(t, "compressed Write behind a stuck connection", r.err)
				if p.sess.IsClosed() {
					t.Fatalf("session closed: %v", p.sess.Err())
				}
				spendMaxCredit(t, p, st)
			}
			closeWithin(t, p.sess, 2*time.Second)
		})
	})
}

// spendMaxCredit goes on from RefilledWhileQueued's end, where the
// stream's send credit is back at exactly 2^31-1: the peer reads again
// (granting session credit as it goes), the application spends exactly
// that stream credit, and one more Write must then wait for a grant. A
// session that kept the credit in two books, and gave the dropped
// frame's credit back to one of them only (the other refused to go past
// 2^31-1), let that Write's bytes through one book and panicked in the
// other ("Take(4096) with 0 bytes of credit"): this is where row 5's
// remote panic came from. It moves 2 GiB.
func spendMaxCredit(t *testing.T, p *attackPeer, st *Stream) {
	t.Helper()
	const grantEvery = 256 << 20
	peerDone := make(chan error, 1)
	go func() {
		// The peer: read every frame; grant session credit as DATA
		// arrives, so that only the stream's credit limits the writer.
		rd := frame.NewReader(io.MultiReader(bytes.NewReader(p.held), p.conn), frame.MaxMaxFrameSize)
		defer rd.Close()
		var got, granted int64
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				peerDone <- err
				return
			}
			if f.Type == frame.Data {
				got += int64(len(f.Payload))
			}
			if got-granted >= grantEvery {
				if err := p.write(frame.Frame{Type: frame.WindowUpdate, WindowDelta: grantEvery}); err != nil {
					peerDone <- err
					return
				}
				granted += grantEvery
			}
		}
	}()
	buf := make([]byte, 1<<20)
	rand.Read(buf) // incompressible: sent raw, taking credit as it goes
	st.SetWriteDeadline(time.Time{})
	for left := int64(maxCredit); left > 0; {
		n, err := st.Write(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			t.Fatalf("spending the stream's credit, %d bytes left: %v (session: %v)", left, err, p.sess.Err())
		}
	}
	st.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := st.Write(buf[:4096])
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a Write past the stream's credit of 2^31-1: %d, %v; want 0 and a timeout (no credit left)", n, err)
	}
	if p.sess.IsClosed() {
		t.Fatalf("session closed: %v", p.sess.Err())
	}
}

// --- Row 7: rapid reset ---

// rapidResetLimit is the victim's MaxIncomingStreams in TestAttackRapidReset.
const rapidResetLimit = 100

// rapidResetApp accepts streams on s in a loop and runs a handler for
// each that works 200 ms (a sleep) and closes its stream. It counts the
// handlers running at once; stop waits for the accept loop (which ends
// with the session) and every handler.
type rapidResetApp struct {
	active, maxActive atomic.Int32
	handled           atomic.Int32
	handlers          sync.WaitGroup
	loop              chan struct{} // closed when the accept loop exits
}

func startRapidResetApp(s *Session) *rapidResetApp {
	a := &rapidResetApp{loop: make(chan struct{})}
	go func() {
		defer close(a.loop)
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			a.handlers.Go(func() {
				n := a.active.Add(1)
				for m := a.maxActive.Load(); n > m && !a.maxActive.CompareAndSwap(m, n); m = a.maxActive.Load() {
				}
				a.handled.Add(1)
				time.Sleep(200 * time.Millisecond) // the handler's work
				a.active.Add(-1)                   // before Close lets the stream go
				st.Close()
			})
		}
	}()
	return a
}

// stop ends the session and waits for the application to finish.
func (a *rapidResetApp) stop(t *testing.T, s *Session) {
	t.Helper()
	s.Close()
	done := make(chan struct{})
	go func() { <-a.loop; a.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(failAfter):
		t.Fatal("the application's handlers did not finish")
	}
}

// TestAttackRapidReset (issue #13 row 7): a peer opens streams and resets
// each at once, on new IDs, for a second. However fast the streams come
// and go, the handlers the application runs at once stay within
// MaxIncomingStreams. NoReset is the baseline: the same limit refuses
// plain SYNs beyond it.
func TestAttackRapidReset(t *testing.T) {
	cfg := &Config{MaxIncomingStreams: rapidResetLimit}

	t.Run("Reset", func(t *testing.T) {
		const attackFor = time.Second
		const maxStreams = 50_000
		const perWrite = 50
		mine, theirs := tcpPair(t)
		p := newAttackPeer(t, mine, theirs, cfg, nil, true)
		app := startRapidResetApp(p.sess)
		defer app.stop(t, p.sess)

		start := time.Now()
		streams := rapidReset(t, p, maxStreams, attackFor, perWrite)
		p.ping(1)
		if p.sess.IsClosed() {
			t.Fatalf("session closed: %v", p.sess.Err())
		}
		st := p.sess.Stats()
		t.Logf("%d streams opened and reset in %v: %d accepted into the backlog, %d refused, %d handed to handlers; at most %d handlers at once",
			streams, time.Since(start).Round(time.Millisecond), st.StreamsAccepted, p.numResets(frame.RefusedStream), app.handled.Load(), app.maxActive.Load())
		if got := app.maxActive.Load(); got > rapidResetLimit {
			t.Errorf("%d handlers ran at once; want at most MaxIncomingStreams (%d)", got, rapidResetLimit)
		}
	})

	t.Run("NoReset", func(t *testing.T) {
		const streams = 3 * rapidResetLimit
		mine, theirs := tcpPair(t)
		p := newAttackPeer(t, mine, theirs, cfg, nil, true)
		app := startRapidResetApp(p.sess)
		defer app.stop(t, p.sess)

		var b []byte
		for i := range streams {
			f := syn(uint32(2*i+1), nil, 0)
			b = f.Append(b)
		}
		if err := p.writeRaw(b); err != nil {
			t.Fatal(err)
		}
		p.ping(1)
		const want = streams - rapidResetLimit
		p.waitFor(fmt.Sprintf("%d REFUSED_STREAM resets", want), func() bool { return p.resets[frame.RefusedStream] >= want })
		eventually(t, "the application to take its streams", func() bool { return app.handled.Load() == rapidResetLimit })
		t.Logf("%d SYNs: %d refused, %d handed to handlers; at most %d handlers at once",
			streams, p.numResets(frame.RefusedStream), app.handled.Load(), app.maxActive.Load())
		if got := p.numResets(frame.RefusedStream); got != want {
			t.Errorf("%d streams refused, want %d", got, want)
		}
		if got := app.maxActive.Load(); got > rapidResetLimit {
			t.Errorf("%d handlers ran at once; want at most %d", got, rapidResetLimit)
		}
	})
}

// --- Row 8: bytes after a compressed payload's zstd frame ---

// TestAttackCompressedTrailing (issue #13 row 8): a COMPRESSED payload
// must be exactly one zstd frame (SPEC.md §10): a valid frame followed by
// a skippable frame, or by a second valid frame, ends the session with
// COMPRESSION_ERROR. Control: the valid frame alone is delivered.
func TestAttackCompressedTrailing(t *testing.T) {
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	plain := jsonLogs(3, 1<<10)
	valid := enc.EncodeAll(plain, nil)
	var h zstd.Header
	if err := h.Decode(valid); err != nil || !h.HasFCS || h.FrameContentSize != uint64(len(plain)) {
		t.Fatalf("the test's zstd frame does not declare its content size: %+v, %v", h, err)
	}
	// A skippable frame: magic 0x184D2A50, 4-byte little-endian length,
	// that many bytes.
	skippable := binary.LittleEndian.AppendUint32(nil, 0x184D2A50)
	skippable = binary.LittleEndian.AppendUint32(skippable, 16)
	skippable = append(skippable, "sixteen bytes..."...)

	cfg := &Config{Compression: CompressionZstd}
	concat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}

	t.Run("Control", func(t *testing.T) {
		fp := newFakePeer(t, cfg, fakeOpts{client: true, hello: zstdHello()})
		if err := fp.write(syn(1, valid, frame.FlagCompressed|frame.FlagFIN)); err != nil {
			t.Fatal(err)
		}
		st := accept(t, fp.sess)
		st.SetReadDeadline(time.Now().Add(failAfter))
		got, err := io.ReadAll(st)
		if err != nil || string(got) != string(plain) {
			t.Fatalf("read %d bytes, %v; want the %d bytes compressed", len(got), err, len(plain))
		}
	})

	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"SkippableAfter", concat(valid, skippable)},
		{"TwoFrames", concat(valid, valid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp := newFakePeer(t, cfg, fakeOpts{client: true, hello: zstdHello()})
			if err := fp.write(syn(1, tc.payload, frame.FlagCompressed)); err != nil {
				t.Fatal(err)
			}
			waitClosed(t, fp.sess, "session given a payload with bytes after its zstd frame")
			err := fp.sess.Err()
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Code != frame.CompressionError || pe.Remote {
				t.Fatalf("Err() = %v, want a local *ProtocolError with code %v", err, frame.CompressionError)
			}
			if g := fp.waitGoAway(); g.ErrorCode != frame.CompressionError {
				t.Fatalf("peer got %v, want GOAWAY %v", &g, frame.CompressionError)
			}
		})
	}
}

// rapidReset opens and at once resets new streams from p, perWrite pairs
// of SYN and RESET per write, until max streams or attackFor, and returns
// how many it opened.
func rapidReset(t *testing.T, p *attackPeer, max int, attackFor time.Duration, perWrite int) int {
	t.Helper()
	start := time.Now()
	id, streams := uint32(1), 0
	var b []byte
	for streams < max && time.Since(start) < attackFor {
		b = b[:0]
		for range perWrite {
			f := syn(id, nil, 0)
			b = f.Append(b)
			f = frame.Frame{Type: frame.Reset, StreamID: id, ErrorCode: frame.Cancel}
			b = f.Append(b)
			id += 2
			streams++
		}
		if err := p.writeRaw(b); err != nil {
			t.Fatalf("after %d streams: %v (session: %v)", streams, err, p.sess.Err())
		}
	}
	return streams
}
