package session

// The malicious-peer matrix (issue #13, point 2; SPEC.md §9.1). Every
// attack class of the matrix runs here through one harness, matrixRun,
// which adds to the attack three checks that the older per-attack tests
// (hostile_test.go, limits_test.go, attack_test.go) do not all make:
//
//   - a heap ceiling: the live heap (runtime.ReadMemStats after two
//     collections) is sampled every 100 ms while the attack runs and once
//     after it; its growth over the baseline taken just before the attack
//     must stay within the test's bound;
//   - no goroutine left behind: goleak.VerifyNone with the goroutines
//     running when the test started ignored, once every cleanup (the
//     sessions' Close) has run;
//   - a bystander: a second, well-behaved session pair in the same
//     process runs an echo loop through the whole attack; every echo must
//     come back intact, and neither of its sessions may end.
//
// Attacks the older tests already drive are re-run here by calling their
// helpers (fillWindow, hostileCases, startRapidResetApp, …); the
// classes no test covered (HELLO abuse seen from the peer's side, floods
// from a peer that reads, a window filled to the session limit, silence
// after the handshake and mid-frame, the slowloris reader) are written
// here. Each test says what the peer receives and what local callers see.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/braidmux/braid/frame"
)

// matrixHeap is the heap ceiling of attacks that should cost the victim
// next to nothing (floods, protocol violations, churn).
const matrixHeap = 16 << 20

// matrixSampleEvery is how often the harness samples the live heap.
const matrixSampleEvery = 100 * time.Millisecond

// matrixRun is the harness of one matrix test: see the file comment.
// newMatrixRun sets it up, begin starts the measurements and the
// bystander's echo loop just before the attack, end stops them and makes
// the checks.
type matrixRun struct {
	t     *testing.T
	limit int64 // heap ceiling, bytes of growth over the baseline

	byClient, byServer *Session // the bystander pair
	byStream           *Stream  // the bystander's echo stream (client side)

	base  int64        // live heap at begin
	peak  atomic.Int64 // largest growth sampled
	stop  chan struct{}
	halt1 sync.Once
	loops sync.WaitGroup // the sampler and the echo loop

	echoes  atomic.Int64 // echoes completed since begin
	echoMu  sync.Mutex
	echoErr error // the first echo failure
}

// newMatrixRun starts the bystander pair and registers the goroutine
// check. Call it first in the test (or subtest), before any session under
// attack is made, so that the check runs after every other cleanup.
func newMatrixRun(t *testing.T, heapLimit int64) *matrixRun {
	t.Helper()
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })

	m := &matrixRun{t: t, limit: heapLimit, stop: make(chan struct{})}
	var handlers sync.WaitGroup
	t.Cleanup(handlers.Wait) // after the pair is closed (cleanups run last-in first-out)
	m.byClient, m.byServer = sessionPair(t, nil, nil)
	t.Cleanup(m.halt) // before the pair is closed
	handlers.Go(func() {
		for {
			st, err := m.byServer.AcceptStream(context.Background())
			if err != nil {
				return
			}
			handlers.Go(func() {
				io.Copy(st, st)
				st.Close()
			})
		}
	})
	m.byStream = open(t, m.byClient)
	if err := m.echo(0); err != nil {
		t.Fatalf("bystander before the attack: %v", err)
	}
	return m
}

// echo sends one message through the bystander's echo stream and checks
// what comes back.
func (m *matrixRun) echo(i int) error {
	msg := pattern(uint64(i)+1<<32, 1000)
	st := m.byStream
	st.SetDeadline(time.Now().Add(failAfter))
	if _, err := st.Write(msg); err != nil {
		return fmt.Errorf("echo %d: Write: %w", i, err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(st, got); err != nil {
		return fmt.Errorf("echo %d: Read: %w", i, err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %d: the data came back changed", i)
	}
	return nil
}

// sample takes one heap sample.
func (m *matrixRun) sample() {
	g := liveHeap() - m.base
	for p := m.peak.Load(); g > p && !m.peak.CompareAndSwap(p, g); p = m.peak.Load() {
	}
}

// begin takes the heap baseline and starts the sampler and the
// bystander's echo loop. Call it once the sessions the attack needs are
// set up, just before the attack.
func (m *matrixRun) begin() {
	m.base = liveHeap()
	m.loops.Go(func() {
		tick := time.NewTicker(matrixSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-m.stop:
				return
			case <-tick.C:
				m.sample()
			}
		}
	})
	m.loops.Go(func() {
		// One echo every 2 ms at most: the bystander must keep working,
		// not compete with the attack for the two CPUs.
		pace := time.NewTicker(2 * time.Millisecond)
		defer pace.Stop()
		for i := 1; i <= 1_000_000; i++ {
			select {
			case <-m.stop:
				return
			case <-pace.C:
			}
			if err := m.echo(i); err != nil {
				m.echoMu.Lock()
				m.echoErr = err
				m.echoMu.Unlock()
				return
			}
			m.echoes.Add(1)
		}
	})
}

// halt stops the sampler and the echo loop and waits for them.
func (m *matrixRun) halt() {
	m.halt1.Do(func() { close(m.stop) })
	m.loops.Wait()
}

// end waits for at least one echo to have completed since begin, stops
// the loops, takes a last heap sample, and checks the bystander and the
// heap ceiling. Call it once the attack's outcome has been checked, while
// the session under attack still exists.
func (m *matrixRun) end() {
	t := m.t
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for m.echoes.Load() == 0 && time.Now().Before(deadline) {
		m.echoMu.Lock()
		failed := m.echoErr != nil
		m.echoMu.Unlock()
		if failed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	m.halt()
	m.sample()

	m.echoMu.Lock()
	err := m.echoErr
	m.echoMu.Unlock()
	if err != nil {
		t.Errorf("bystander during the attack: %v", err)
	}
	n := m.echoes.Load()
	if n == 0 {
		t.Errorf("bystander: no echo completed during the attack")
	}
	if err := m.echo(-1); err != nil {
		t.Errorf("bystander after the attack: %v", err)
	}
	for _, s := range []*Session{m.byClient, m.byServer} {
		if s.IsClosed() {
			t.Errorf("bystander session closed: %v", s.Err())
		}
		if pe := s.Stats().ProtocolErrors; pe != 0 {
			t.Errorf("bystander session counted %d protocol errors", pe)
		}
	}
	peak := m.peak.Load()
	t.Logf("harness: heap grew by at most %s (ceiling %s); bystander: %d echoes during the attack", mib(peak), mib(m.limit), n)
	if peak > m.limit {
		t.Errorf("the heap grew by %s during the attack; ceiling %s", mib(peak), mib(m.limit))
	}
}

// blockedPing starts a Session.Ping that stays blocked while the session
// runs (the fake peer must not answer PINGs) and returns its outcome.
func blockedPing(s *Session) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := s.Ping(context.Background())
		ch <- err
	}()
	return ch
}

// wantSessionError checks a local caller's error after the session failed
// with a protocol error of code detected here.
func wantSessionError(t *testing.T, what string, err error, code frame.ErrorCode) {
	t.Helper()
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("%s: %v, want an error matching net.ErrClosed", what, err)
	}
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != code || pe.Remote {
		t.Fatalf("%s: %v, want a local *ProtocolError with code %v", what, err, code)
	}
}

// --- Protocol violations: windows, stream IDs, frame sizes, HELLO after
// the handshake, compression ---

// matrixExtraCases are violations hostileCases does not include.
func matrixExtraCases() []hostileCase {
	raw := func(fp *fakePeer, b []byte) { fp.writeRaw(b) }
	trailing := func(extra func(valid []byte) []byte) func(t *testing.T, fp *fakePeer) {
		return func(t *testing.T, fp *fakePeer) {
			valid := zstdFrame(t, jsonLogs(3, 1<<10))
			fp.write(syn(3, append(valid, extra(valid)...), frame.FlagCompressed))
		}
	}
	zcfg := &Config{Compression: CompressionZstd}
	return []hostileCase{
		{
			// The largest length prefix there is (5 bytes, 2^32-1):
			// refused on the prefix, before any body is read or buffered.
			name:   "LengthPrefix2^32-1",
			attack: func(t *testing.T, fp *fakePeer) { raw(fp, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}) },
			code:   frame.FrameSizeError,
		},
		{
			name:   "LengthPrefixOverflows32Bits",
			attack: func(t *testing.T, fp *fakePeer) { raw(fp, []byte{0xff, 0xff, 0xff, 0xff, 0x10}) },
			code:   frame.ProtocolError,
		},
		{
			name: "LengthPrefixAboveMaxFrameSize",
			attack: func(t *testing.T, fp *fakePeer) {
				raw(fp, protowire.AppendVarint(nil, frame.MaxMaxFrameSize))
			},
			code: frame.FrameSizeError,
		},
		{
			name: "HelloTwiceAtStart",
			attack: func(t *testing.T, fp *fakePeer) {
				h := fakeHello()
				h.Version = 2 // a second HELLO, whatever it says
				raw(fp, helloBytes(h))
			},
			code: frame.ProtocolError,
		},
		{
			name: "CompressedTrailingSkippable", cfg: zcfg, hello: zstdHello(), code: frame.CompressionError,
			attack: trailing(func([]byte) []byte {
				// A zstd skippable frame: magic 0x184D2A50, length 4, 4 bytes.
				return []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 't', 'a', 'i', 'l'}
			}),
		},
		{
			name: "CompressedTwoFrames", cfg: zcfg, hello: zstdHello(), code: frame.CompressionError,
			attack: trailing(func(valid []byte) []byte { return valid }),
		},
	}
}

// zstdFrame compresses b into one zstd frame that declares its size.
func zstdFrame(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// TestMatrixProtocolViolations re-runs every protocol violation of
// TestHostilePeer (window and session overrun, credit overflow, stream-ID
// misuse, frames for never-opened streams, frame-size and length-prefix
// abuse, HELLO after the handshake, compression abuse), and a few more,
// through the harness. For each: the peer receives GOAWAY with the case's
// code and the connection closes; Session.Err, a Ping that was waiting,
// and OpenStream all fail with a local *ProtocolError of that code that
// matches net.ErrClosed; a stream the peer completed before the violation
// still reads in full.
func TestMatrixProtocolViolations(t *testing.T) {
	for i, tc := range append(hostileCases(), matrixExtraCases()...) {
		t.Run(tc.name, func(t *testing.T) {
			m := newMatrixRun(t, matrixHeap)
			client := !tc.fakeServer
			fp := newFakePeer(t, tc.cfg, fakeOpts{client: client, hello: tc.hello, noPingAnswer: true})
			done := uint32(1)
			if !client {
				done = 2
			}
			completed := pattern(uint64(2000+i), 4<<10)
			m.begin()
			if err := fp.write(syn(done, completed, frame.FlagFIN)); err != nil {
				t.Fatal(err)
			}
			ping := blockedPing(fp.sess)
			tc.attack(t, fp)

			waitClosed(t, fp.sess, "session under attack")
			wantSessionError(t, "Session.Err", fp.sess.Err(), tc.code)
			if g := fp.waitGoAway(); g.ErrorCode != tc.code {
				t.Fatalf("peer got GOAWAY %v, want code %v", &g, tc.code)
			}
			wantSessionError(t, "the waiting Ping", waitErr(t, ping, "the waiting Ping"), tc.code)
			_, err := fp.sess.OpenStream(context.Background())
			wantSessionError(t, "OpenStream after the violation", err, tc.code)

			st := accept(t, fp.sess)
			if st.ID() != done {
				t.Fatalf("accepted stream %d, want %d", st.ID(), done)
			}
			st.SetReadDeadline(time.Now().Add(failAfter))
			got, err := io.ReadAll(st)
			if err != nil || !bytes.Equal(got, completed) {
				t.Fatalf("completed stream: read %d bytes, %v; want %d bytes, nil", len(got), err, len(completed))
			}
			m.end()
		})
	}
}

// waitErr waits for an error from ch.
func waitErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(failAfter):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// TestMatrixWindowFill: the peer fills every byte of a 16 MiB session
// window (four streams of 4 MiB, the stream window) that the application
// never reads, then sends one byte more. Filling is legal: the session
// stays up holding at most 1.25× the window (+1 MiB). The byte more ends
// it with FLOW_CONTROL_ERROR (GOAWAY to the peer, a local *ProtocolError
// to callers), and the data received before it still reads back intact.
func TestMatrixWindowFill(t *testing.T) {
	const streamWin = 4 << 20
	const sessWin = 4 * streamWin
	m := newMatrixRun(t, sessWin+sessWin/4+1<<20)
	cfg := &Config{InitialStreamWindow: streamWin, MaxStreamWindow: streamWin, MaxSessionWindow: sessWin}
	fp := newFakePeer(t, cfg, fakeOpts{client: true, countOnly: true, noPingAnswer: true})
	chunk := pattern(5, 60<<10)
	want := make([]byte, 0, streamWin) // what each stream carries
	for len(want) < streamWin {
		want = append(want, chunk[:min(len(chunk), streamWin-len(want))]...)
	}
	ids := []uint32{1, 3, 5, 7}

	m.begin()
	var b []byte
	for _, id := range ids {
		for off := 0; off < streamWin; off += len(chunk) {
			f := data(id, want[off:min(off+len(chunk), streamWin)], 0)
			if off == 0 {
				f.Flags |= frame.FlagSYN
			}
			b = f.Append(b[:0])
			if err := fp.writeRaw(b); err != nil {
				t.Fatalf("stream %d at %d: %v (session: %v)", id, off, err, fp.sess.Err())
			}
		}
	}
	fp.ping(1) // every frame has been handled
	if fp.sess.IsClosed() {
		t.Fatalf("session closed by a peer within its credit: %v", fp.sess.Err())
	}
	if got := fp.sess.Stats().DataReceived; got != sessWin {
		t.Fatalf("DataReceived = %d, want the session window, %d", got, sessWin)
	}
	var sts []*Stream
	for range ids {
		sts = append(sts, accept(t, fp.sess))
	}
	m.sample() // the full window is held now

	ping := blockedPing(fp.sess)
	if err := fp.write(syn(9, []byte{1}, 0)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, fp.sess, "session given a byte beyond its window")
	wantSessionError(t, "Session.Err", fp.sess.Err(), frame.FlowControlError)
	if g := fp.waitGoAway(); g.ErrorCode != frame.FlowControlError {
		t.Fatalf("peer got GOAWAY %v, want FLOW_CONTROL_ERROR", &g)
	}
	wantSessionError(t, "the waiting Ping", waitErr(t, ping, "the waiting Ping"), frame.FlowControlError)
	if got := readN(t, sts[0], streamWin); !bytes.Equal(got, want) {
		t.Fatal("stream 1's data, received before the violation, came back changed")
	}
	m.end()
}

// --- HELLO abuse in the handshake ---

// TestMatrixBadHello: a first frame that is not a valid HELLO (bad magic,
// version or settings, the receiver's own role, another frame type,
// undecodable or oversized bytes) fails Server with ErrHandshake at once
// (not at HandshakeTimeout), and no session exists. The peer receives the
// session's own HELLO and then the end of the connection: no GOAWAY
// (SPEC.md §4.1 makes GOAWAY HANDSHAKE_ERROR optional; this
// implementation does not send it). The bad HELLO's own bytes are never
// acted on.
func TestMatrixBadHello(t *testing.T) {
	bad := func(edit func(*frame.Settings)) []byte {
		h := fakeHello()
		edit(&h)
		return helloBytes(h)
	}
	cases := []struct {
		name string
		send []byte
	}{
		{"WrongMagic", bad(func(h *frame.Settings) { h.Magic = []byte("brai_") })},
		{"WrongVersion", bad(func(h *frame.Settings) { h.Version = 2 })},
		{"MaxFrameSizeTooLarge", bad(func(h *frame.Settings) { h.MaxFrameSize = frame.MaxMaxFrameSize + 1 })},
		{"MaxFrameSizeTooSmall", bad(func(h *frame.Settings) { h.MaxFrameSize = frame.MinMaxFrameSize - 1 })},
		{"InitialWindowTooSmall", bad(func(h *frame.Settings) { h.InitialWindow = 1023 })},
		{"SessionWindowTooLarge", bad(func(h *frame.Settings) { h.SessionWindow = 1 << 31 })},
		{"TooManyCompressionOffers", bad(func(h *frame.Settings) {
			h.Compression = make([]frame.Compression, frame.MaxCompressionOffers+1)
		})},
		{"SameRole", bad(func(h *frame.Settings) { h.Role = frame.RoleServer })},
		{"NoSettings", frameBytes(frame.Frame{Type: frame.Hello})},
		{"PingFirst", frameBytes(frame.Frame{Type: frame.Ping, Opaque: 1})},
		{"SYNFirst", frameBytes(syn(1, []byte("early"), 0))},
		{"Garbage", []byte{5, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"HugeLengthPrefix", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	// Undecodable bytes end the session on the read: the connection may
	// close before the session's HELLO is written.
	// (The codec itself rejects a HELLO with too many offers.)
	silent := map[string]bool{"Garbage": true, "HugeLengthPrefix": true, "TooManyCompressionOffers": true}
	const hsTimeout = 5 * time.Second
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMatrixRun(t, matrixHeap)
			mine, theirs := tcpPair(t)
			defer mine.Close()
			got := make(chan []byte, 1)
			go func() { // the peer keeps every byte the session sends, until the end
				b, _ := io.ReadAll(mine)
				got <- b
			}()
			m.begin()
			if _, err := mine.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			s, err := Server(theirs, &Config{HandshakeTimeout: hsTimeout})
			took := time.Since(start)
			if err == nil {
				s.Close()
				t.Fatal("handshake succeeded")
			}
			t.Logf("Server: %v after %v", err, took.Round(time.Millisecond))
			if !errors.Is(err, ErrHandshake) || s != nil {
				t.Fatalf("Server = %v, %v; want nil, ErrHandshake", s, err)
			}
			if took > hsTimeout/2 {
				t.Fatalf("Server failed after %v: the bad HELLO was not detected on arrival", took)
			}
			var b []byte
			select {
			case b = <-got:
			case <-time.After(failAfter):
				t.Fatal("the session did not close the connection")
			}
			fs := parseAll(t, b)
			if ok := len(fs) == 1 && fs[0].Type == frame.Hello || silent[tc.name] && len(fs) == 0; !ok {
				t.Fatalf("peer received %d frames (%v), want the session's HELLO alone", len(fs), fs)
			}
			m.end()
		})
	}
}

// parseAll decodes the frames in b, which must hold whole frames only.
func parseAll(t *testing.T, b []byte) []frame.Frame {
	t.Helper()
	rd := frame.NewReader(bytes.NewReader(b), frame.MaxMaxFrameSize)
	defer rd.Close()
	var fs []frame.Frame
	for {
		f, err := rd.ReadFrame()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatalf("the session's bytes do not parse as frames: %v", err)
		}
		fs = append(fs, frame.Frame{Type: f.Type, StreamID: f.StreamID, ErrorCode: f.ErrorCode})
	}
}

// --- Control-frame and open floods ---

// matrixFloodFor bounds how long a flood from a reading peer lasts.
const matrixFloodFor = time.Second

// floodReading writes the frames next appends, as fast as it can, for
// matrixFloodFor or maxFrames, at a Server session with cfg, from a peer
// that reads and counts everything the session sends. The session must
// stay up and still answer a PING at the end. It returns the peer and the
// number of frames written.
func floodReading(t *testing.T, cfg *Config, maxFrames int, next func(b []byte, i int) []byte) (*attackPeer, int) {
	t.Helper()
	mine, theirs := tcpPair(t)
	p := newAttackPeer(t, mine, theirs, cfg, nil, true)
	start := time.Now()
	i := 0
	b := make([]byte, 0, 64<<10)
	for i < maxFrames && time.Since(start) < matrixFloodFor {
		b = b[:0]
		for len(b) < 60<<10 && i < maxFrames {
			b = next(b, i)
			i++
		}
		if err := p.writeRaw(b); err != nil {
			t.Fatalf("after %d frames: %v (session: %v)", i, err, p.sess.Err())
		}
	}
	p.ping(1 << 62)
	if p.sess.IsClosed() {
		t.Fatalf("session closed: %v", p.sess.Err())
	}
	if pe := p.sess.Stats().ProtocolErrors; pe != 0 {
		t.Fatalf("%d protocol errors", pe)
	}
	t.Logf("%d frames in %v; the session is up", i, time.Since(start).Round(time.Millisecond))
	return p, i
}

// TestMatrixFloodReading: control-frame floods from a peer that reads
// everything it is sent. PINGs are all answered; SYNs beyond
// AcceptBacklog are refused with RESET REFUSED_STREAM and the backlog is
// intact; unknown frame types are ignored. The session stays up and the
// heap stays under 16 MiB.
func TestMatrixFloodReading(t *testing.T) {
	const maxFrames = 1_000_000

	t.Run("Ping", func(t *testing.T) {
		m := newMatrixRun(t, matrixHeap)
		m.begin()
		// The same opaque every time: the peer's record of ACKs stays one entry.
		floodReading(t, nil, maxFrames, func(b []byte, i int) []byte {
			f := frame.Frame{Type: frame.Ping, Opaque: 7}
			return f.Append(b)
		})
		m.end()
	})

	t.Run("SYN", func(t *testing.T) {
		const backlog = 16
		m := newMatrixRun(t, matrixHeap)
		m.begin()
		p, n := floodReading(t, &Config{AcceptBacklog: backlog, MaxIncomingStreams: 64}, maxFrames, func(b []byte, i int) []byte {
			f := syn(uint32(2*i+1), nil, 0)
			return f.Append(b)
		})
		p.waitFor("every refusal", func() bool { return p.resets[frame.RefusedStream] == n-backlog })
		st := p.sess.Stats()
		if st.StreamsAccepted != backlog || st.StreamsRefused != uint64(n-backlog) {
			t.Fatalf("Stats: %d accepted, %d refused; want %d, %d", st.StreamsAccepted, st.StreamsRefused, backlog, n-backlog)
		}
		for i := range backlog {
			if st := accept(t, p.sess); st.ID() != uint32(2*i+1) {
				t.Fatalf("accepted %d, want %d", st.ID(), 2*i+1)
			}
		}
		m.end()
	})

	t.Run("UnknownType", func(t *testing.T) {
		m := newMatrixRun(t, matrixHeap)
		m.begin()
		junk := make([]byte, 1<<10)
		floodReading(t, nil, maxFrames, func(b []byte, i int) []byte {
			f := frame.Frame{Type: 42, StreamID: uint32(i), Payload: junk}
			return f.Append(b)
		})
		m.end()
	})
}

// floodDeaf attacks a Server session with cfg from a peer that writes the
// frames next appends, as fast as it can, for floodFor or floodMaxFrames
// (the bounds of attack_test.go's flood), and never reads. The session
// must stop reading (the peer's writes block), and end within its
// ConnectionWriteTimeout (1 s) + 2 s of the peer's last write going
// through, with an error matching net.ErrClosed caused by the write
// timeout; the peer must receive no GOAWAY.
func floodDeaf(t *testing.T, cfg *Config, next func(b []byte, i int) []byte) {
	const writeTimeout = time.Second
	cfg.ConnectionWriteTimeout = writeTimeout
	mine, theirs := tcpPair(t)
	p := newAttackPeer(t, mine, theirs, cfg, nil, false)

	start := time.Now()
	last := start // when the last Write went through
	frames, i := 0, 0
	var attackErr error
	mine.SetWriteDeadline(start.Add(floodFor))
	buf := make([]byte, 0, 64<<10)
	for i < floodMaxFrames && time.Since(start) < floodFor {
		buf = buf[:0]
		first := i
		for len(buf) < 60<<10 && i < floodMaxFrames {
			buf = next(buf, i)
			i++
		}
		if _, err := mine.Write(buf); err != nil {
			attackErr = err
			break
		}
		frames += i - first
		last = time.Now()
	}
	t.Logf("the peer wrote %d frames; its last write went through at +%v; stopped by: %v",
		frames, last.Sub(start).Round(time.Millisecond), attackErr)
	if attackErr == nil {
		t.Fatalf("the peer wrote %d frames in %v without blocking: the session kept reading", frames, floodFor)
	}
	select {
	case <-p.sess.CloseChan():
	case <-time.After(time.Until(last.Add(writeTimeout + 2*time.Second))):
		t.Fatalf("the session was still up %v after the peer's writes stopped going through; want it ended within ConnectionWriteTimeout (%v) + 2 s",
			time.Since(last).Round(time.Millisecond), writeTimeout)
	}
	err := p.sess.Err()
	t.Logf("the session ended at +%v: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "ConnectionWriteTimeout") {
		t.Fatalf("Err() = %v, want net.ErrClosed naming ConnectionWriteTimeout, and not a deadline error", err)
	}
	// What reached the peer: answers, and no GOAWAY.
	mine.SetReadDeadline(time.Now().Add(failAfter))
	rd := frame.NewReader(mine, frame.MaxMaxFrameSize)
	defer rd.Close()
	got := map[frame.Type]int{}
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the peer's connection did not end: %v", err)
			}
			break
		}
		got[f.Type]++
	}
	t.Logf("the peer then read: %v", got)
	if got[frame.GoAway] != 0 {
		t.Fatalf("the peer received %d GOAWAYs", got[frame.GoAway])
	}
}

// TestMatrixFloodNotReading: TestAttackPingFlood's and TestAttackSynFlood's
// attacks (a peer that floods and never reads the answers) through the
// harness, with a 16 MiB heap ceiling and stricter checks (floodDeaf):
// the session stops reading while more than 64 KiB of answers wait
// (SPEC.md §15), so the flood stalls in the attacker's socket; the
// answers never drain, and ConnectionWriteTimeout ends the session.
func TestMatrixFloodNotReading(t *testing.T) {
	t.Run("Ping", func(t *testing.T) {
		m := newMatrixRun(t, matrixHeap)
		m.begin()
		floodDeaf(t, &Config{}, func(b []byte, i int) []byte {
			f := frame.Frame{Type: frame.Ping, Opaque: uint64(i) + 1}
			return f.Append(b)
		})
		m.end()
	})
	t.Run("SYN", func(t *testing.T) {
		m := newMatrixRun(t, matrixHeap)
		m.begin()
		floodDeaf(t, &Config{MaxIncomingStreams: 16, AcceptBacklog: 16}, func(b []byte, i int) []byte {
			f := syn(uint32(2*i+1), nil, 0)
			return f.Append(b)
		})
		m.end()
	})
}

// TestMatrixRapidReset re-runs TestAttackRapidReset's attack through the
// harness: for a second the peer opens streams and resets each at once.
// The session stays up, the application's handlers running at once stay
// within MaxIncomingStreams, and the heap under 16 MiB.
func TestMatrixRapidReset(t *testing.T) {
	const attackFor = time.Second
	const maxStreams = 50_000
	m := newMatrixRun(t, matrixHeap)
	mine, theirs := tcpPair(t)
	p := newAttackPeer(t, mine, theirs, &Config{MaxIncomingStreams: rapidResetLimit}, nil, true)
	app := startRapidResetApp(p.sess)
	defer app.stop(t, p.sess)

	m.begin()
	streams := rapidReset(t, p, maxStreams, attackFor, 50)
	p.ping(1)
	if p.sess.IsClosed() {
		t.Fatalf("session closed: %v", p.sess.Err())
	}
	t.Logf("%d streams opened and reset; %d handed to handlers, at most %d at once; %d refused",
		streams, app.handled.Load(), app.maxActive.Load(), p.numResets(frame.RefusedStream))
	if got := app.maxActive.Load(); got > rapidResetLimit {
		t.Errorf("%d handlers ran at once; want at most MaxIncomingStreams (%d)", got, rapidResetLimit)
	}
	m.end()
}

// TestMatrixChurn re-runs TestAttackStreamChurn's attack through the
// harness: the peer opens a stream and finishes it at once (SYN|FIN), the
// application accepts and closes it, thousands of times. Every stream is
// forgotten, the session stays up, the heap stays under 16 MiB.
func TestMatrixChurn(t *testing.T) {
	cycles := 5_000
	if raceEnabled {
		cycles = 1_000
	}
	const batch = 100
	m := newMatrixRun(t, matrixHeap)
	mine, theirs := tcpPair(t)
	p := newAttackPeer(t, mine, theirs, nil, nil, true)
	m.begin()
	next := uint32(1)
	for done := 0; done < cycles; done += batch {
		churn(t, p, &next, batch)
	}
	eventually(t, "every stream to be forgotten", func() bool { return p.sess.NumStreams() == 0 })
	p.ping(1)
	if p.sess.IsClosed() {
		t.Fatalf("session closed: %v", p.sess.Err())
	}
	m.end()
}

// TestMatrixClosedStreamFrames: frames for streams that are closed are not
// session errors. DATA after the peer's own FIN resets the stream with
// RESET STREAM_CLOSED (the application, which had read the stream to
// io.EOF, sees its Write fail with a local *StreamError STREAM_CLOSED);
// DATA, WINDOW_UPDATE and RESET after the peer reset a stream are ignored
// (they may have been in flight). The session stays up.
func TestMatrixClosedStreamFrames(t *testing.T) {
	m := newMatrixRun(t, matrixHeap)
	fp := newFakePeer(t, nil, fakeOpts{client: true})
	m.begin()
	msg := pattern(11, 3000)
	fp.write(syn(1, msg, frame.FlagFIN))
	st := accept(t, fp.sess)
	st.SetReadDeadline(time.Now().Add(failAfter))
	if got, err := io.ReadAll(st); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("stream 1: read %d bytes, %v; want its %d bytes, then io.EOF", len(got), err, len(msg))
	}
	fp.write(data(1, []byte("after fin"), 0))
	fp.waitFor("RESET STREAM_CLOSED", func() bool { return fp.resets[frame.StreamClosed] == 1 })
	_, err := st.Write([]byte("x"))
	wantStreamError(t, "Write on the stream reset for DATA after FIN", err, uint32(frame.StreamClosed), false)

	fp.write(syn(3, nil, 0), frame.Frame{Type: frame.Reset, StreamID: 3, ErrorCode: frame.Cancel})
	for range 100 {
		fp.write(
			data(1, []byte("late"), 0),
			data(3, []byte("late"), 0),
			frame.Frame{Type: frame.WindowUpdate, StreamID: 3, WindowDelta: 10},
			frame.Frame{Type: frame.Reset, StreamID: 3, ErrorCode: frame.Cancel},
		)
	}
	fp.ping(1)
	if fp.sess.IsClosed() {
		t.Fatalf("session closed: %v", fp.sess.Err())
	}
	if got := fp.numResets(frame.StreamClosed); got != 1 {
		t.Fatalf("%d RESET STREAM_CLOSED, want 1", got)
	}
	if pe := fp.sess.Stats().ProtocolErrors; pe != 0 {
		t.Fatalf("%d protocol errors", pe)
	}
	m.end()
}

// --- Memory overhead per payload byte, compression at maximum credit ---

// TestMatrixBufferOverhead re-runs TestAttackPaddedData and
// TestAttackPayloadRounding through the harness (fillWindow checks the
// heap per window; the harness adds its ceiling, the goroutine check and
// the bystander).
func TestMatrixBufferOverhead(t *testing.T) {
	t.Run("PaddedData", func(t *testing.T) {
		const window = 1 << 20
		m := newMatrixRun(t, 2*window+2<<20)
		m.begin()
		fillWindow(t, window, 2<<10, func(p []byte) []byte { return paddedData(1, p, 60<<10, true) }, 2)
		m.end()
	})
	t.Run("PayloadRounding", func(t *testing.T) {
		const window = 4 << 20
		m := newMatrixRun(t, window+window/2+2<<20)
		m.begin()
		fillWindow(t, window, 2049, func(p []byte) []byte { return frameBytes(data(1, p, 0)) }, 1.5)
		m.end()
	})
}

// TestMatrixCompressedMaxWindow re-runs TestAttackCompressedMaxWindow
// through the harness: a compressed Write stuck behind a connection the
// peer stopped reading, with the peer's credit at 2^31-1, fails with a
// timeout at its deadline (no panic) and Session.Close returns promptly.
func TestMatrixCompressedMaxWindow(t *testing.T) {
	m := newMatrixRun(t, matrixHeap)
	m.begin()
	TestAttackCompressedMaxWindow(t)
	m.end()
}

// --- Silent peers and slow readers ---

// TestMatrixSilentPeer: a peer that goes silent. In the handshake, Server
// fails with ErrHandshake at HandshakeTimeout, and the peer receives the
// session's HELLO then the end of the connection. After the handshake
// (whether silent between frames or in the middle of one), the session
// ends once KeepAliveTimeout passes with no frame from the peer: the peer
// receives GOAWAY KEEPALIVE_TIMEOUT, and Session.Err and a Read that was
// waiting fail with ErrKeepAliveTimeout, matching net.ErrClosed.
func TestMatrixSilentPeer(t *testing.T) {
	t.Run("Handshake", func(t *testing.T) {
		const hs = 300 * time.Millisecond
		m := newMatrixRun(t, matrixHeap)
		mine, theirs := tcpPair(t)
		defer mine.Close()
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(mine)
			got <- b
		}()
		m.begin()
		start := time.Now()
		s, err := Server(theirs, &Config{HandshakeTimeout: hs})
		took := time.Since(start)
		if s != nil || !errors.Is(err, ErrHandshake) {
			t.Fatalf("Server = %v, %v; want nil, ErrHandshake", s, err)
		}
		if took < hs-10*time.Millisecond || took > hs+2*time.Second {
			t.Fatalf("Server gave up after %v, want at HandshakeTimeout (%v)", took, hs)
		}
		select {
		case b := <-got:
			if fs := parseAll(t, b); len(fs) != 1 || fs[0].Type != frame.Hello {
				t.Fatalf("peer received %v, want the session's HELLO alone", fs)
			}
		case <-time.After(failAfter):
			t.Fatal("the session did not close the connection")
		}
		m.end()
	})

	const interval, timeout = 50 * time.Millisecond, 300 * time.Millisecond
	for _, midFrame := range []bool{false, true} {
		name := "AfterHandshake"
		if midFrame {
			name = "MidFrame"
		}
		t.Run(name, func(t *testing.T) {
			m := newMatrixRun(t, matrixHeap)
			cfg := &Config{KeepAliveInterval: interval, KeepAliveTimeout: timeout}
			fp := newFakePeer(t, cfg, fakeOpts{client: true, noPingAnswer: true})
			m.begin()
			fp.write(syn(1, nil, 0))
			st := accept(t, fp.sess)
			if midFrame {
				// A DATA frame announcing 32 KiB, cut after 1 KiB.
				b := frameBytes(data(1, make([]byte, 32<<10), 0))
				fp.writeRaw(b[:len(b)-31<<10])
			}
			start := time.Now()
			reads := make(chan error, 1)
			go func() {
				_, err := st.Read(make([]byte, 64<<10))
				reads <- err
			}()
			waitClosed(t, fp.sess, "session with a silent peer")
			took := time.Since(start)
			err := fp.sess.Err()
			if !errors.Is(err, ErrKeepAliveTimeout) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Err() = %v, want ErrKeepAliveTimeout matching net.ErrClosed", err)
			}
			if took > interval+timeout+2*time.Second {
				t.Fatalf("session ended %v after the peer went silent; want within KeepAliveInterval+KeepAliveTimeout (%v)", took, interval+timeout)
			}
			if g := fp.waitGoAway(); g.ErrorCode != frame.KeepAliveTimeout {
				t.Fatalf("peer got GOAWAY %v, want KEEPALIVE_TIMEOUT", &g)
			}
			if err := waitErr(t, reads, "the waiting Read"); !errors.Is(err, ErrKeepAliveTimeout) || !errors.Is(err, net.ErrClosed) {
				t.Fatalf("the waiting Read: %v, want ErrKeepAliveTimeout matching net.ErrClosed", err)
			}
			t.Logf("session ended %v after the peer went silent", took.Round(time.Millisecond))
			m.end()
		})
	}
}

// slowReader reads a connection slowly (at most 1 KiB per 20 ms) until
// fast is set.
type slowReader struct {
	conn net.Conn
	fast atomic.Bool
}

func (r *slowReader) Read(p []byte) (int, error) {
	if !r.fast.Load() {
		time.Sleep(20 * time.Millisecond) // the attack's pace
		p = p[:min(len(p), 1<<10)]
	}
	return r.conn.Read(p)
}

// TestMatrixSlowloris: a peer that opens a stream, grants the session
// all the credit there is (2^31-1 on the stream and the session), and then
// reads the connection very slowly (1 KiB every 20 ms). The application
// writes as much as it can. Its writes to the connection block, and
// ConnectionWriteTimeout ends the session within that timeout (+2 s) of
// the last Write that went through. The application's Write then fails
// with an error matching net.ErrClosed; the peer receives no GOAWAY (none
// can be written), only the end of the connection once it has read what
// the kernel buffered. The heap stays under 16 MiB: the application's
// Write blocks, and nothing queues up behind the stuck connection.
func TestMatrixSlowloris(t *testing.T) {
	const writeTimeout = 500 * time.Millisecond
	const maxWindow = 1<<31 - 1
	const chunk = 64 << 10
	const maxBytes = 1 << 30
	m := newMatrixRun(t, matrixHeap)
	mine, theirs := tcpPair(t)
	p := newAttackPeer(t, mine, theirs, &Config{ConnectionWriteTimeout: writeTimeout}, nil, false)
	h := fakeHello()
	if err := p.write(
		syn(1, nil, 0),
		frame.Frame{Type: frame.WindowUpdate, StreamID: 1, WindowDelta: maxWindow - h.InitialWindow},
		frame.Frame{Type: frame.WindowUpdate, WindowDelta: maxWindow - h.SessionWindow},
	); err != nil {
		t.Fatal(err)
	}
	st := accept(t, p.sess)

	m.begin()
	// The slowloris parses what it reads, counting GOAWAYs, until the
	// connection ends (or failAfter passes).
	mine.SetReadDeadline(time.Now().Add(failAfter))
	sr := &slowReader{conn: mine}
	var (
		goaways  int
		peerErr  error
		peerDone = make(chan struct{})
	)
	go func() {
		defer close(peerDone)
		rd := frame.NewReader(sr, frame.MaxMaxFrameSize)
		defer rd.Close()
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				peerErr = err
				return
			}
			if f.Type == frame.GoAway {
				goaways++
			}
		}
	}()
	defer func() { mine.Close(); <-peerDone }()

	var (
		written   atomic.Int64
		lastWrite atomic.Int64 // UnixNano of the last Write that returned without error
		writeErr  error
	)
	start := time.Now()
	lastWrite.Store(start.UnixNano())
	writeDone := make(chan struct{})
	go func() {
		defer close(writeDone)
		buf := pattern(3, chunk)
		for written.Load() < maxBytes {
			n, err := st.Write(buf)
			written.Add(int64(n))
			if err != nil {
				writeErr = err
				return
			}
			lastWrite.Store(time.Now().UnixNano())
		}
	}()
	waitClosed(t, p.sess, "session facing a slowloris reader")
	ended := time.Now()
	select {
	case <-writeDone:
	case <-time.After(failAfter):
		t.Fatal("the application's Write did not return after the session ended")
	}
	last := time.Unix(0, lastWrite.Load())
	t.Logf("%s written; the last Write went through at +%v, the session ended at +%v: %v; the failed Write: %v",
		mib(written.Load()), last.Sub(start).Round(time.Millisecond), ended.Sub(start).Round(time.Millisecond), p.sess.Err(), writeErr)
	if written.Load() >= maxBytes {
		t.Fatalf("the peer took all %s at 50 KiB/s", mib(maxBytes))
	}
	if d := ended.Sub(last); d > writeTimeout+2*time.Second {
		t.Errorf("the session ended %v after the last Write went through; want within ConnectionWriteTimeout (%v) + 2 s", d.Round(time.Millisecond), writeTimeout)
	}
	err := p.sess.Err()
	if !errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "ConnectionWriteTimeout") {
		t.Errorf("Err() = %v, want net.ErrClosed naming ConnectionWriteTimeout, and not a deadline error", err)
	}
	if !errors.Is(writeErr, net.ErrClosed) {
		t.Errorf("the application's Write: %v, want an error matching net.ErrClosed", writeErr)
	}
	// A dead session is not a timeout a caller should retry after
	// (yamux#156's trap).
	var ne net.Error
	if errors.As(writeErr, &ne) && ne.Timeout() {
		t.Errorf("the failed Write's error reports Timeout() == true: %v", writeErr)
	}
	m.end()

	// The peer, reading at full speed now, gets what the kernel held and
	// then the end of the connection, and no GOAWAY.
	sr.fast.Store(true)
	<-peerDone // bounded by the read deadline
	t.Logf("the peer's reading ended with: %v", peerErr)
	if errors.Is(peerErr, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer's connection did not end: %v", peerErr)
	}
	if goaways != 0 {
		t.Fatalf("the peer received %d GOAWAYs", goaways)
	}
}

// TestMatrixWindow64MiB: with the default 64 MiB session window filled
// to the last byte and never read, the session holds at most 80 MiB,
// whatever the frame layout: full frames, payloads just past a power of
// two, small payloads, and payloads padded with an unknown field.
func TestMatrixWindow64MiB(t *testing.T) {
	const window = 64 << 20
	const factor = float64(79<<20) / window // fillWindow allows factor×window + 1 MiB: 80 MiB
	layouts := []struct {
		name    string
		payload int
		encode  func(p []byte) []byte
	}{
		{"FullFrames", 60 << 10, func(p []byte) []byte { return frameBytes(data(1, p, 0)) }},
		{"Payloads2049", 2049, func(p []byte) []byte { return frameBytes(data(1, p, 0)) }},
		{"Payloads1000", 1000, func(p []byte) []byte { return frameBytes(data(1, p, 0)) }},
		{"Padded16KiBIn60KiB", 16 << 10, func(p []byte) []byte { return paddedData(1, p, 44<<10, false) }},
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			// fillWindow checks the 80 MiB itself, before it reads the
			// window back into a 64 MiB buffer of the test's own, which
			// the harness's samples may also catch.
			m := newMatrixRun(t, (80+64+8)<<20)
			m.begin()
			fillWindow(t, window, l.payload, l.encode, factor)
			m.end()
		})
	}
}
