package session_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/internal/cutrelay"
	"github.com/braidmux/braid/session"
)

// Acceptance tests for resumable sessions (issue 12): a client made by
// Dial and a server from a Listener talk through a cutrelay.Relay; the relay
// resets the connection in the middle of transfers, in the middle of
// half-closes and resets, and in the middle of the resume handshake, and
// every stream must carry on as if nothing happened: every byte arrives
// once, in order (SHA-256 checked), no call fails, and Stats().Resumes
// counts exactly the connections that were re-attached. Every test ends
// with goleak: closing the sessions and the Listener leaves no goroutine.

// resumeWait bounds every wait for something that should happen soon; it
// only runs out when a test is failing.
const resumeWait = 20 * time.Second

// resumeCfg is the configuration both sides use: defaults, a
// ResumeTimeout short enough that a broken test ends, long enough that a
// slow machine never gets near it.
func resumeCfg(c session.Compression) *session.Config {
	cfg := session.DefaultConfig()
	cfg.ResumeTimeout = 30 * time.Second
	cfg.Compression = c
	return cfg
}

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// resumePair is a resumable client and server session talking through a
// cutrelay.Relay.
type resumePair struct {
	relay    *cutrelay.Relay
	l        *session.Listener
	cli, srv *session.Session
}

// newResumePair starts a Listener, a relay in front of it and a client
// session dialled through the relay. The client and server configs are
// copied (a logger is added: the sessions' logs are printed if the test
// fails, or always with RESUME_LOGS=1 in the environment). Cleanup closes everything, fails the test if the Listener's
// Accept ever returned a second session (resumes must attach silently),
// and then checks that no goroutine is left (goleak).
func newResumePair(t *testing.T, ccfg, scfg *session.Config) *resumePair {
	t.Helper()
	logs := &syncBuf{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("RESUME_LOGS") != "" {
			t.Logf("session logs:\n%s", logs)
		}
	})
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) })

	withLog := func(cfg *session.Config, side string) *session.Config {
		c := *cfg
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("side", side)
		return &c
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &resumePair{l: session.NewListener(ln, withLog(scfg, "server"))}
	p.relay = cutrelay.Start(t, ln.Addr().String(), nil)

	first := make(chan *session.Session, 1)
	acceptDone := make(chan struct{})
	var extra atomic.Int32
	go func() {
		defer close(acceptDone)
		for n := 0; ; n++ {
			s, err := p.l.Accept()
			if err != nil {
				return
			}
			if n == 0 {
				first <- s
				continue
			}
			extra.Add(1)
			s.Close()
		}
	}()
	t.Cleanup(func() {
		within(t, "Listener.Close", func() { p.l.Close(); <-acceptDone })
		if n := extra.Load(); n > 0 {
			t.Errorf("Listener.Accept returned %d sessions after the first: a resume must re-attach silently", n)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), resumeWait)
	defer cancel()
	p.cli, err = session.Dial(ctx, p.relay.Dial, withLog(ccfg, "client"))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { within(t, "client Close", func() { p.cli.Close() }) })
	select {
	case p.srv = <-first:
	case <-time.After(resumeWait):
		t.Fatal("Listener.Accept returned no session")
	}
	t.Cleanup(func() { within(t, "server Close", func() { p.srv.Close() }) })
	if p.cli.Stats().Compression != ccfg.Compression || p.srv.Stats().Compression != scfg.Compression {
		t.Fatalf("compression agreed: client %v, server %v; want %v, %v", p.cli.Stats().Compression, p.srv.Stats().Compression, ccfg.Compression, scfg.Compression)
	}
	return p
}

// stats describes both sessions and the relay, for failure messages.
func (p *resumePair) stats() string {
	return fmt.Sprintf("client %+v (err %v)\nserver %+v (err %v)\nrelay: %d live, %d accepted, %d refused, passed %d/%d, dropped %d/%d",
		p.cli.Stats(), p.cli.Err(), p.srv.Stats(), p.srv.Err(),
		p.relay.Live(), p.relay.Accepted(), p.relay.Refused(),
		p.relay.Passed(cutrelay.ToServer), p.relay.Passed(cutrelay.ToClient), p.relay.Dropped(cutrelay.ToServer), p.relay.Dropped(cutrelay.ToClient))
}

// resumes returns both sessions' Stats().Resumes.
func (p *resumePair) resumes() (cli, srv uint64) {
	return p.cli.Stats().Resumes, p.srv.Stats().Resumes
}

// waitResumes waits until the client has counted cli resumes and the
// server srv, and fails the test if either counts more.
func (p *resumePair) waitResumes(t testing.TB, cli, srv uint64) {
	t.Helper()
	deadline := time.Now().Add(resumeWait)
	for {
		c, s := p.resumes()
		if c > cli || s > srv {
			t.Fatalf("Stats().Resumes: client %d, server %d; want %d and %d\n%s", c, s, cli, srv, p.stats())
		}
		if c == cli && s == srv {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Stats().Resumes: client %d, server %d after %v; want %d and %d\n%s", c, s, resumeWait, cli, srv, p.stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// cutOne is a bulkSpec cut: it resets the one live connection.
func (p *resumePair) cutOne(t testing.TB, i int) {
	if n := p.relay.Cut(); n != 1 {
		t.Errorf("cut %d reset %d connections, want 1", i, n)
	}
}

// wantResumePerCut checks what cuts cuts of a working connection must
// leave: exactly one re-attachment per cut on each side, once the last
// has been counted (it may come after the data, if the last cut came
// late in the transfer), and one connection per resume (nothing went
// wrong in the resumes themselves).
func (p *resumePair) wantResumePerCut(t testing.TB, cuts int) {
	t.Helper()
	p.waitResumes(t, uint64(cuts), uint64(cuts))
	if n := p.relay.Accepted(); n != cuts+1 {
		t.Errorf("the relay carried %d connections, want %d (the first and one per cut)", n, cuts+1)
	}
}

// pollUntil polls cond until it holds, failing the test after resumeWait.
func pollUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(resumeWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", resumeWait, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// dumpGoroutines writes every goroutine's stack to the test log.
func dumpGoroutines(t testing.TB) {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	t.Logf("goroutines:\n%s", b.String())
}

// within runs f (a Close) and waits for it for at most resumeWait; if it
// has not returned by then, the test fails with every goroutine's stack
// rather than hanging (f is left running).
func within(t testing.TB, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(resumeWait):
		t.Errorf("%s did not return within %v", what, resumeWait)
		dumpGoroutines(t)
	}
}

// ---- Data ----

// resumeWords is the vocabulary of compressible payloads.
var resumeWords = func() [][]byte {
	rng := rand.New(rand.NewPCG(12, 34))
	seps := []string{" ", " ", " ", " ", ", ", ". ", ".\n"}
	words := make([][]byte, 256)
	for i := range words {
		w := make([]byte, 1+rng.IntN(9))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = append(w, seps[rng.IntN(len(seps))]...)
	}
	return words
}()

// payloadGen produces the bytes one direction of one stream carries,
// determined by the stream ID and direction: random (incompressible), or
// text made of random words from a small vocabulary (compressible a few
// times, but not trivially).
type payloadGen struct {
	rng  *rand.ChaCha8
	text bool
	pend []byte // rest of the current word
}

func newPayloadGen(id uint32, dir byte, text bool) *payloadGen {
	var seed [32]byte
	binary.LittleEndian.PutUint32(seed[:], id)
	seed[4] = dir
	copy(seed[8:], "braid resume test")
	return &payloadGen{rng: rand.NewChaCha8(seed), text: text}
}

func (g *payloadGen) fill(p []byte) {
	if !g.text {
		g.rng.Read(p)
		return
	}
	for n := 0; n < len(p); {
		if len(g.pend) == 0 {
			g.pend = resumeWords[g.rng.Uint64()%uint64(len(resumeWords))]
		}
		k := copy(p[n:], g.pend)
		g.pend = g.pend[k:]
		n += k
	}
}

// ---- Bulk transfers with cuts ----

// bulkSpec describes a bulk transfer: streams streams opened by the
// client, each carrying size bytes in each direction at once.
type bulkSpec struct {
	streams int
	size    int
	text    bool
	// cuts are the fractions of the total transfer at which cut is
	// called, in order; cut i is called once both sides have counted
	// resumesBefore(i) resumes, so it always lands on a working
	// connection.
	cuts          []float64
	cut           func(t testing.TB, i int)
	resumesBefore func(i int) (cli, srv uint64)
}

// digest is what one side saw of one direction of one stream.
type digest struct {
	n   int64
	sum [sha256.Size]byte
}

// bulkResult is what both sides saw, by stream ID and direction (0:
// client→server, 1: server→client).
type bulkResult struct {
	mu       sync.Mutex
	sent     map[[2]uint32]digest
	received map[[2]uint32]digest
	accepted int
}

// runBulk runs spec over p and checks the outcome: every stream's bytes
// arrive intact in both directions, every call succeeds, every cut
// happened mid-transfer on a working connection.
func runBulk(t *testing.T, p *resumePair, spec bulkSpec) {
	total := int64(2 * spec.streams * spec.size)
	var thresholds []int64
	for _, f := range spec.cuts {
		thresholds = append(thresholds, int64(f*float64(total)))
	}
	crossed := make(chan int, len(thresholds))
	var moved atomic.Int64 // bytes read by either side's streams
	count := func(n int) {
		v := moved.Add(int64(n))
		for i, th := range thresholds {
			if v-int64(n) < th && v >= th {
				crossed <- i
			}
		}
	}

	res := &bulkResult{sent: make(map[[2]uint32]digest), received: make(map[[2]uint32]digest)}
	var wg sync.WaitGroup
	// stream runs one side of one stream: write its data and half-close
	// while reading the peer's until EOF, then close.
	stream := func(st *session.Stream, dir byte) {
		defer wg.Done()
		var rw sync.WaitGroup
		rw.Add(1)
		go func() {
			defer rw.Done()
			gen := newPayloadGen(st.ID(), dir, spec.text)
			h := sha256.New()
			buf := make([]byte, 96<<10)
			for left := spec.size; left > 0; {
				b := buf[:min(left, len(buf))]
				gen.fill(b)
				h.Write(b)
				n, err := st.Write(b)
				if err != nil || n != len(b) {
					t.Errorf("stream %d dir %d: Write after %d bytes = %d, %v", st.ID(), dir, spec.size-left, n, err)
					return
				}
				left -= n
			}
			if err := st.CloseWrite(); err != nil {
				t.Errorf("stream %d dir %d: CloseWrite: %v", st.ID(), dir, err)
			}
			res.mu.Lock()
			res.sent[[2]uint32{st.ID(), uint32(dir)}] = digest{int64(spec.size), [32]byte(h.Sum(nil))}
			res.mu.Unlock()
		}()
		h := sha256.New()
		buf := make([]byte, 64<<10)
		var got int64
		for {
			n, err := st.Read(buf)
			h.Write(buf[:n])
			got += int64(n)
			count(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("stream %d: Read after %d bytes: %v", st.ID(), got, err)
				break
			}
		}
		res.mu.Lock()
		res.received[[2]uint32{st.ID(), uint32(1 - dir)}] = digest{got, [32]byte(h.Sum(nil))}
		res.mu.Unlock()
		rw.Wait()
		if err := st.Close(); err != nil {
			t.Errorf("stream %d: Close: %v", st.ID(), err)
		}
	}

	// The server accepts streams until the transfer is over.
	acceptCtx, stopAccepting := context.WithCancel(context.Background())
	defer stopAccepting()
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			st, err := p.srv.AcceptStream(acceptCtx)
			if err != nil {
				if acceptCtx.Err() == nil {
					t.Errorf("server AcceptStream: %v", err)
				}
				return
			}
			wg.Add(1)
			res.mu.Lock()
			res.accepted++
			res.mu.Unlock()
			go stream(st, 1)
		}
	}()

	// The cutter cuts the connection as the transfer crosses each
	// threshold.
	cutterDone := make(chan struct{})
	cutterErr := make(chan string, 1)
	go func() {
		defer close(cutterDone)
		for i := range thresholds {
			select {
			case <-crossed:
			case <-acceptDone:
				return
			}
			cli, srv := spec.resumesBefore(i)
			deadline := time.Now().Add(resumeWait)
			for {
				c, s := p.resumes()
				if c == cli && s == srv {
					break
				}
				if c > cli || s > srv || time.Now().After(deadline) {
					cutterErr <- fmt.Sprintf("before cut %d: Stats().Resumes client %d, server %d; want %d and %d", i, c, s, cli, srv)
					return
				}
				time.Sleep(time.Millisecond)
			}
			if m := moved.Load(); m >= total {
				cutterErr <- fmt.Sprintf("cut %d: the transfer ended before the cut", i)
				return
			}
			spec.cut(t, i)
		}
	}()

	for i := 0; i < spec.streams; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), resumeWait)
		st, err := p.cli.OpenStream(ctx)
		cancel()
		if err != nil {
			t.Fatalf("OpenStream %d: %v", i, err)
		}
		wg.Add(1)
		go stream(st, 0)
	}

	done := make(chan struct{})
	go func() {
		// The server's streams are added by the acceptor: wait for all
		// of them to be accepted before waiting for the group.
		for {
			res.mu.Lock()
			n := res.accepted
			res.mu.Unlock()
			if n >= spec.streams {
				break
			}
			select {
			case <-p.srv.CloseChan():
				wg.Wait()
				close(done)
				return
			case <-time.After(time.Millisecond):
			}
		}
		wg.Wait()
		close(done)
	}()
	limit := 3 * time.Minute
	select {
	case <-done:
	case <-time.After(limit):
		t.Errorf("transfer not done after %v; moved %d of %d bytes\n%s", limit, moved.Load(), total, p.stats())
		dumpGoroutines(t)
		within(t, "closing after the hang", func() { p.cli.Close(); p.srv.Close(); <-done })
		t.FailNow()
	}
	stopAccepting()
	<-acceptDone
	<-cutterDone
	select {
	case msg := <-cutterErr:
		t.Error(msg)
	default:
	}
	// The cut's own goroutine reported its failures; the transfer's are
	// reported above. Now the data.
	if res.accepted != spec.streams {
		t.Errorf("server accepted %d streams, want %d", res.accepted, spec.streams)
	}
	for key, sent := range res.sent {
		if got := res.received[key]; got != sent {
			t.Errorf("stream %d dir %d: received %d bytes with SHA-256 %x, sent %d with %x", key[0], key[1], got.n, got.sum[:8], sent.n, sent.sum[:8])
		}
	}
	if len(res.sent) != 2*spec.streams || len(res.received) != 2*spec.streams {
		t.Errorf("%d directions sent, %d received; want %d", len(res.sent), len(res.received), 2*spec.streams)
	}
	if m := moved.Load(); m != total {
		t.Errorf("moved %d bytes, want %d", m, total)
	}
}

// bulkSize is the per-direction size of each stream in the bulk tests:
// the 32 MiB, less with compression under the race detector
// (klauspost/compress is Go code, much slowed by -race; the full size
// runs in every normal go test).
func bulkSize(c session.Compression) int {
	if session.RaceEnabled && c == session.CompressionZstd {
		return 4 << 20 // zstd is slow under -race
	}
	return 32 << 20
}

// testResumeBulk is the acceptance test: 16 streams each moving
// bulkSize both ways, the connection cut at 25, 50 and 75 % of the
// transfer.
func testResumeBulk(t *testing.T, c session.Compression) {
	p := newResumePair(t, resumeCfg(c), resumeCfg(c))
	start := time.Now()
	runBulk(t, p, bulkSpec{
		streams: 16,
		size:    bulkSize(c),
		text:    c == session.CompressionZstd,
		cuts:    []float64{0.25, 0.50, 0.75},
		cut:     p.cutOne,
		// Cut i lands once resume i-1 has completed on both sides.
		resumesBefore: func(i int) (uint64, uint64) { return uint64(i), uint64(i) },
	})
	if t.Failed() {
		t.Log(p.stats())
		return
	}
	p.wantResumePerCut(t, 3)
	t.Logf("%v; %s", time.Since(start), p.stats())
}

// TestResumeBulk: 16 streams × 32 MiB each way, three cuts, SHA-256 of
// every direction of every stream checked, no call fails, Resumes is 3
// on both sides.
func TestResumeBulk(t *testing.T) {
	testResumeBulk(t, session.CompressionNone)
}

// TestResumeBulkZstd is TestResumeBulk with compression on both sides,
// on compressible data.
func TestResumeBulkZstd(t *testing.T) {
	testResumeBulk(t, session.CompressionZstd)
}

// ---- Cuts during the resume handshake ----

// resumeChallengeLen is the length of the server's RESUME CHALLENGE
// frame, the first thing a server sends on a resumed connection
// (SPEC.md §16.3: a 16-byte nonce).
var resumeChallengeLen = func() int64 {
	f := frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeChallenge, Nonce: make([]byte, 16)}}
	return int64(len(f.Append(nil)))
}()

// resumeRequestLen is the length of the client's RESUME REQUEST frame,
// the first thing a client sends on a resumed connection (SPEC.md §16.3:
// a 16-byte session ID and a 16-byte nonce).
var resumeRequestLen = func() int64 {
	f := frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeRequest, SessionID: make([]byte, 16), Nonce: make([]byte, 16)}}
	return int64(len(f.Append(nil)))
}()

// TestResumeHandshakeCut cuts the connection mid-transfer, and then cuts
// the connection the client resumes on again, at several points of the
// resume handshake (or refuses it altogether for a while). The session
// resumes on a later attempt and every stream completes intact. The
// Resumes counts say exactly which attempts re-attached: an attempt cut
// before the server verified the proof counts on neither side; one cut
// after the server accepted counts on the server only (the client never
// saw the answer); one cut while resending counts on both.
func TestResumeHandshakeCut(t *testing.T) {
	size := 4 << 20
	if session.RaceEnabled {
		size = 1 << 20
	}
	cases := []struct {
		name     string
		dir      cutrelay.Direction
		after    int64 // cut the resumed connection after this many bytes in dir; -1: refuse twice instead
		hole     bool  // swallow client→server bytes before the first cut, so the client has lots to resend
		cli, srv uint64
	}{
		{"request", cutrelay.ToServer, 3, false, 1, 1},
		{"proof", cutrelay.ToServer, resumeRequestLen + 3, false, 1, 1},
		{"challenge", cutrelay.ToClient, 3, false, 1, 1},
		{"accepted", cutrelay.ToClient, resumeChallengeLen + 3, false, 1, 2},
		{"resending", cutrelay.ToServer, 256, true, 2, 2},
		{"refused", 0, -1, false, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newResumePair(t, resumeCfg(session.CompressionNone), resumeCfg(session.CompressionNone))
			runBulk(t, p, bulkSpec{
				streams: 4,
				size:    size,
				cuts:    []float64{0.5},
				cut: func(t testing.TB, i int) {
					if tc.hole {
						// Frames written to this connection from now on
						// are lost: the client must resend them, and
						// the handshake cut lands in the middle.
						base := p.relay.Dropped(cutrelay.ToServer)
						p.relay.Blackhole(cutrelay.ToServer)
						deadline := time.Now().Add(resumeWait)
						for p.relay.Dropped(cutrelay.ToServer)-base < 64<<10 {
							if time.Now().After(deadline) {
								t.Errorf("the client wrote less than 64 KiB in %v", resumeWait)
								break
							}
							time.Sleep(time.Millisecond)
						}
					}
					var armed <-chan struct{}
					if tc.after >= 0 {
						armed = p.relay.CutNextAfter(tc.dir, tc.after)
					} else {
						p.relay.Down()
					}
					if n := p.relay.Cut(); n != 1 {
						t.Errorf("cut reset %d connections, want 1", n)
					}
					if armed != nil {
						select {
						case <-armed:
						case <-time.After(resumeWait):
							t.Errorf("the resumed connection was not cut within %v", resumeWait)
						}
						return
					}
					deadline := time.Now().Add(resumeWait)
					for p.relay.Refused() < 2 {
						if time.Now().After(deadline) {
							t.Errorf("the client did not retry twice within %v", resumeWait)
							break
						}
						time.Sleep(time.Millisecond)
					}
					p.relay.Up()
				},
				resumesBefore: func(int) (uint64, uint64) { return 0, 0 },
			})
			if t.Failed() {
				t.Log(p.stats())
				return
			}
			p.waitResumes(t, tc.cli, tc.srv)
		})
	}
}

// TestResumeBackToBackCuts cuts the connection three times in a row
// mid-transfer, each cut as soon as both sides have counted the previous
// resume, so a cut can land before any byte moves on the new connection
// (or while the resent bytes are still in flight). Each cut still counts
// exactly one resume on each side.
func TestResumeBackToBackCuts(t *testing.T) {
	size := 4 << 20
	if session.RaceEnabled {
		size = 1 << 20
	}
	p := newResumePair(t, resumeCfg(session.CompressionNone), resumeCfg(session.CompressionNone))
	runBulk(t, p, bulkSpec{
		streams:       4,
		size:          size,
		cuts:          []float64{0.5, 0.5, 0.5},
		cut:           p.cutOne,
		resumesBefore: func(i int) (uint64, uint64) { return uint64(i), uint64(i) },
	})
	if t.Failed() {
		t.Log(p.stats())
		return
	}
	p.wantResumePerCut(t, 3)
}

// TestResumeServerDidNotNotice breaks the path so that only the client
// sees it (its side is reset; the server's connection stays open, and
// what the server writes to it is swallowed): the client resumes on a new
// connection while the server still holds the old one, perhaps blocked
// writing to it. The server takes the proof as its cue to drop the old
// connection, the streams carry on intact, and the old connection is
// closed.
func TestResumeServerDidNotNotice(t *testing.T) {
	size := 4 << 20
	if session.RaceEnabled {
		size = 1 << 20
	}
	p := newResumePair(t, resumeCfg(session.CompressionNone), resumeCfg(session.CompressionNone))
	runBulk(t, p, bulkSpec{
		streams: 4,
		size:    size,
		cuts:    []float64{0.5},
		cut: func(t testing.TB, i int) {
			if n := p.relay.Abandon(); n != 1 {
				t.Errorf("abandoned %d connections, want 1", n)
			}
		},
		resumesBefore: func(int) (uint64, uint64) { return 0, 0 },
	})
	if t.Failed() {
		t.Log(p.stats())
		return
	}
	p.waitResumes(t, 1, 1)
	pollUntil(t, "the server to close the connection it was abandoned on", func() bool { return p.relay.Orphans() == 0 })
}

// ---- Half-closes, resets and opens in flight ----

// Stream roles in TestResumeInFlight, carried in each stream's first 4
// bytes (with the round and an index) so the accepting side knows which
// stream it got.
const (
	roleCloseWrite = iota + 1 // the opener writes, then half-closes
	roleReset                 // the opener writes, then resets
	roleOpened                // opened while the connection was failing
	roleSentinel              // opened after everything else
)

func streamTag(round, role, i int) uint32 { return uint32(round<<16 | role<<8 | i) }

// readTag reads a stream's tag.
func readTag(t testing.TB, st *session.Stream) uint32 {
	t.Helper()
	var b [4]byte
	st.SetReadDeadline(time.Now().Add(resumeWait))
	defer st.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(st, b[:]); err != nil {
		t.Fatalf("stream %d: reading its tag: %v", st.ID(), err)
	}
	return binary.BigEndian.Uint32(b[:])
}

// openTagged opens a stream on s and writes its tag.
func openTagged(t testing.TB, s *session.Session, tag uint32) *session.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), resumeWait)
	defer cancel()
	st, err := s.OpenStream(ctx)
	if err != nil {
		t.Fatalf("OpenStream: %v", err)
	}
	// Writes in these tests are small and never wait for credit long;
	// the deadline only turns a hang into a failure.
	st.SetWriteDeadline(time.Now().Add(resumeWait))
	if _, err := st.Write(binary.BigEndian.AppendUint32(nil, tag)); err != nil {
		t.Fatalf("stream %d: writing its tag: %v", st.ID(), err)
	}
	return st
}

// acceptor delivers the streams a session accepts, in order, until the
// session ends.
func acceptor(t *testing.T, s *session.Session) <-chan *session.Stream {
	ch := make(chan *session.Stream, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for {
			st, err := s.AcceptStream(context.Background())
			if err != nil {
				return
			}
			ch <- st
		}
	}()
	t.Cleanup(func() { within(t, "Close", func() { s.Close(); <-done }) })
	return ch
}

// acceptTagged takes the next accepted stream and checks its tag.
func acceptTagged(t testing.TB, ch <-chan *session.Stream, want uint32) *session.Stream {
	t.Helper()
	select {
	case st, ok := <-ch:
		if !ok {
			t.Fatalf("session ended while waiting for stream %#x", want)
		}
		if got := readTag(t, st); got != want {
			t.Fatalf("accepted stream %d with tag %#x, want %#x (a stream accepted twice, lost, or out of order)", st.ID(), got, want)
		}
		st.SetWriteDeadline(time.Now().Add(resumeWait)) // as openTagged
		return st
	case <-time.After(resumeWait):
		t.Fatalf("stream %#x not accepted within %v", want, resumeWait)
		return nil
	}
}

// readAllBy reads st to its end with a deadline.
func readAllBy(st *session.Stream) ([]byte, error) {
	st.SetReadDeadline(time.Now().Add(resumeWait))
	defer st.SetReadDeadline(time.Time{})
	return io.ReadAll(st)
}

// wantData checks that st yields exactly want and then io.EOF.
func wantData(t testing.TB, what string, st *session.Stream, want []byte) {
	t.Helper()
	got, err := readAllBy(st)
	if err != nil {
		t.Errorf("%s (stream %d): read %d bytes then %v; want %d bytes then io.EOF", what, st.ID(), len(got), err, len(want))
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s (stream %d): read %d bytes then io.EOF, want %d bytes (equal: %v)", what, st.ID(), len(got), len(want), bytes.Equal(got, want))
	}
}

// wantReset checks that st yields a prefix of sent (the reset may
// overtake data) and then the peer's *StreamError with code.
func wantReset(t testing.TB, what string, st *session.Stream, sent []byte, code uint32, remote bool) {
	t.Helper()
	got, err := readAllBy(st)
	if !bytes.HasPrefix(sent, got) {
		t.Errorf("%s (stream %d): read %d bytes that are not a prefix of the %d sent", what, st.ID(), len(got), len(sent))
	}
	var se *session.StreamError
	if !errors.As(err, &se) || se.Code != code || se.Remote != remote {
		t.Errorf("%s (stream %d): read ended with %v (%T), want *StreamError{Code: %#x, Remote: %v}", what, st.ID(), err, err, code, remote)
	}
}

// TestResumeInFlight half-closes, resets and opens streams in both
// directions while the connection is failing — frames written to the old
// connection are swallowed by the relay, then the connection is cut — in
// three rounds: both directions lost, only server→client lost (the server
// applied the client's frames but its acknowledgements never came back,
// so nothing may be applied twice), only client→server lost. After each
// resume every half-close reads as io.EOF after exactly the data, every
// reset as the *StreamError with its code after a prefix of the data,
// every stream opened is accepted exactly once and in order, and no
// stream is left over on either side.
func TestResumeInFlight(t *testing.T) {
	for _, c := range []session.Compression{session.CompressionNone, session.CompressionZstd} {
		t.Run(c.String(), func(t *testing.T) { testResumeInFlight(t, c) })
	}
}

// testResumeInFlight is TestResumeInFlight with compression c (and then
// compressible payloads).
func testResumeInFlight(t *testing.T, c session.Compression) {
	p := newResumePair(t, resumeCfg(c), resumeCfg(c))
	cliAcc, srvAcc := acceptor(t, p.cli), acceptor(t, p.srv)
	payload := func(round, role, i, n int) []byte {
		b := make([]byte, n)
		newPayloadGen(streamTag(round, role, i), 7, c == session.CompressionZstd).fill(b)
		return b
	}
	sizes := []int{0, 1, 1000, 200 << 10} // all within the initial window
	rounds := []struct {
		name  string
		holes []cutrelay.Direction
	}{
		{"both directions lost", []cutrelay.Direction{cutrelay.ToServer, cutrelay.ToClient}},
		{"server→client lost", []cutrelay.Direction{cutrelay.ToClient}},
		{"client→server lost", []cutrelay.Direction{cutrelay.ToServer}},
	}
	for round, rd := range rounds {
		t.Logf("round %d: %s", round, rd.name)
		// Streams opened before the trouble, by each side (o: 0 the
		// client, 1 the server), with the opener's and the peer's ends.
		type side struct {
			s   *session.Session
			acc <-chan *session.Stream
		}
		sides := [2]side{{p.cli, srvAcc}, {p.srv, cliAcc}} // opener, and the peer's acceptor
		var (
			closers, resetters      [2][]*session.Stream // opener's ends
			closersPeer, resetsPeer [2][]*session.Stream // peer's ends
			closeData, resetData    [2][][]byte
			opened, openedPeer      [2][]*session.Stream
			openData                [2][][]byte
			lostBytes               [2]int64 // bytes of data each opener writes that must cross
		)
		for o := range sides {
			role := func(r int) int { return r | o<<4 }
			for i := range sizes {
				closers[o] = append(closers[o], openTagged(t, sides[o].s, streamTag(round, role(roleCloseWrite), i)))
			}
			for i := range 2 {
				resetters[o] = append(resetters[o], openTagged(t, sides[o].s, streamTag(round, role(roleReset), i)))
			}
			for i := range sizes {
				closersPeer[o] = append(closersPeer[o], acceptTagged(t, sides[o].acc, streamTag(round, role(roleCloseWrite), i)))
			}
			for i := range 2 {
				resetsPeer[o] = append(resetsPeer[o], acceptTagged(t, sides[o].acc, streamTag(round, role(roleReset), i)))
			}
		}

		// The trouble: from now on the relay swallows what the old
		// connection carries in the round's directions.
		var base [2]int64
		var sentBase [2]uint64
		for _, d := range rd.holes {
			base[d] = p.relay.Dropped(d)
			p.relay.Blackhole(d)
		}
		for o := range sides {
			sentBase[o] = sides[o].s.Stats().BytesSent
		}
		for o := range sides {
			role := func(r int) int { return r | o<<4 }
			for i, n := range sizes {
				b := payload(round, role(roleCloseWrite), i, n)
				closeData[o] = append(closeData[o], b)
				if _, err := closers[o][i].Write(b); err != nil {
					t.Fatalf("Write before CloseWrite: %v", err)
				}
				if err := closers[o][i].CloseWrite(); err != nil {
					t.Fatalf("CloseWrite: %v", err)
				}
				lostBytes[o] += int64(n)
			}
			for i := range resetters[o] {
				b := payload(round, role(roleReset), i, 50<<10)
				resetData[o] = append(resetData[o], b)
				if _, err := resetters[o][i].Write(b); err != nil {
					t.Fatalf("Write before Reset: %v", err)
				}
				if err := resetters[o][i].Reset(resetCode(round, o, i)); err != nil {
					t.Fatalf("Reset: %v", err)
				}
			}
			for i, n := range sizes[1:] {
				tag := streamTag(round, role(roleOpened), i)
				st := openTagged(t, sides[o].s, tag)
				b := payload(round, role(roleOpened), i, n)
				openData[o] = append(openData[o], b)
				if _, err := st.Write(b); err != nil {
					t.Fatalf("Write on a new stream: %v", err)
				}
				if i%2 == 0 {
					if err := st.CloseWrite(); err != nil {
						t.Fatalf("CloseWrite on a new stream: %v", err)
					}
				}
				opened[o] = append(opened[o], st)
				lostBytes[o] += int64(n)
			}
		}
		// Wait until the data has been written to the old connection
		// and lost (the relay has swallowed at least what the sender
		// counted in BytesSent since the hole opened: a write is
		// counted before it is made, so none of it slipped through
		// before the hole), then cut it. The FINs and RESETs were
		// queued just before: they are on the old connection too, or
		// about to be.
		for _, d := range rd.holes {
			o := 0 // client→server carries what the client wrote
			if d == cutrelay.ToClient {
				o = 1
			}
			pollUntil(t, fmt.Sprintf("the %v bytes to be swallowed", d), func() bool {
				got := p.relay.Dropped(d) - base[d]
				sent := int64(sides[o].s.Stats().BytesSent - sentBase[o])
				return got > 0 && got >= sent && (c != session.CompressionNone || got >= lostBytes[o])
			})
		}
		if n := p.relay.Cut(); n != 1 {
			t.Fatalf("round %d: cut reset %d connections, want 1", round, n)
		}
		// Streams opened after the cut, while the session is detached:
		// each side's acceptor must yield them right after the ones
		// opened before, and nothing in between.
		var sentinels [2]*session.Stream
		for o := range sides {
			sentinels[o] = openTagged(t, sides[o].s, streamTag(round, roleSentinel|o<<4, 0))
		}

		// After the resume.
		for o := range sides {
			role := func(r int) int { return r | o<<4 }
			who := [2]string{"client", "server"}[o]
			for i, st := range closersPeer[o] {
				wantData(t, fmt.Sprintf("round %d: %s's half-close after %d bytes", round, who, sizes[i]), st, closeData[o][i])
				// The peer answers and closes its side too.
				if _, err := st.Write([]byte("ok")); err != nil {
					t.Errorf("round %d: answering a half-closed stream: %v", round, err)
				}
				if err := st.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
				wantData(t, fmt.Sprintf("round %d: answer to %s's half-close", round, who), closers[o][i], []byte("ok"))
				closers[o][i].Close()
			}
			for i, st := range resetsPeer[o] {
				code := resetCode(round, o, i)
				wantReset(t, fmt.Sprintf("round %d: %s's reset, at the peer", round, who), st, resetData[o][i], code, true)
				st.Close()
				wantReset(t, fmt.Sprintf("round %d: %s's reset, at the %s", round, who, who), resetters[o][i], nil, code, false)
				resetters[o][i].Close()
			}
			for i := range opened[o] {
				st := acceptTagged(t, sides[o].acc, streamTag(round, role(roleOpened), i))
				openedPeer[o] = append(openedPeer[o], st)
			}
			acceptTagged(t, sides[o].acc, streamTag(round, roleSentinel|o<<4, 0)).Close()
			sentinels[o].Close()
			for i, st := range openedPeer[o] {
				want := openData[o][i]
				if i%2 == 0 {
					wantData(t, fmt.Sprintf("round %d: stream the %s opened and half-closed in flight", round, who), st, want)
				} else {
					st.SetReadDeadline(time.Now().Add(resumeWait))
					got := make([]byte, len(want))
					if _, err := io.ReadFull(st, got); err != nil || !bytes.Equal(got, want) {
						t.Errorf("round %d: stream the %s opened in flight: read %v (equal %v)", round, who, err, bytes.Equal(got, want))
					}
					opened[o][i].CloseWrite()
					wantData(t, "its half-close", st, nil)
				}
				st.Close()
				opened[o][i].Close()
			}
		}
		if t.Failed() {
			t.Fatalf("round %d failed; %s", round, p.stats())
		}
		p.waitResumes(t, uint64(round+1), uint64(round+1))
		// Every stream of the round is closed on both sides: none is
		// left over (a stream opened twice would be).
		pollUntil(t, "no streams left open", func() bool {
			return p.cli.NumStreams() == 0 && p.srv.NumStreams() == 0
		})
	}
	t.Log(p.stats())
}

// resetCode is the application error code of a reset stream.
func resetCode(round, opener, i int) uint32 { return uint32(0x100 + round<<8 | opener<<4 | i) }

// ---- Ending while detached ----

// TestResumeNoLeak ends sessions while they wait to be resumed: the
// client's while it is redialling a relay that refuses it, the server's
// by closing the Listener. Blocked calls return errors matching
// net.ErrClosed (the server's also session.ErrNotResumed), and goleak
// (in newResumePair's cleanup) finds no goroutine left.
func TestResumeNoLeak(t *testing.T) {
	ccfg := resumeCfg(session.CompressionNone)
	scfg := resumeCfg(session.CompressionNone)
	scfg.ResumeTimeout = 3 * time.Second // bounds the wait if the server noticed the loss only after the Listener closed
	p := newResumePair(t, ccfg, scfg)
	srvAcc := acceptor(t, p.srv)
	cst := openTagged(t, p.cli, 1)
	sst := acceptTagged(t, srvAcc, 1)

	p.relay.Down()
	if n := p.relay.Cut(); n != 1 {
		t.Fatalf("cut reset %d connections, want 1", n)
	}
	reads := make(chan error, 2)
	go func() { _, err := cst.Read(make([]byte, 1)); reads <- err }()
	go func() { _, err := sst.Read(make([]byte, 1)); reads <- err }()
	pollUntil(t, "the client to redial twice", func() bool { return p.relay.Refused() >= 2 })
	select {
	case err := <-reads:
		t.Fatalf("a Read returned %v while the session waited to be resumed", err)
	default:
	}

	if err := p.cli.Close(); err != nil {
		t.Errorf("client Close: %v", err)
	}
	select {
	case err := <-reads:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("client's blocked Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(resumeWait):
		t.Fatal("client's blocked Read did not return after Close")
	}

	start := time.Now()
	if err := p.l.Close(); err != nil {
		t.Errorf("Listener Close: %v", err)
	}
	select {
	case <-p.srv.CloseChan():
	case <-time.After(scfg.ResumeTimeout + time.Second):
		t.Fatalf("the detached server session did not end within ResumeTimeout + 1 s of the Listener closing\n%s", p.stats())
	}
	t.Logf("server session ended %v after the Listener closed", time.Since(start))
	if err := p.srv.Err(); !errors.Is(err, session.ErrNotResumed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("server session's Err() = %v, want session.ErrNotResumed and net.ErrClosed", err)
	}
	select {
	case err := <-reads:
		if !errors.Is(err, session.ErrNotResumed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("server's blocked Read: %v, want session.ErrNotResumed and net.ErrClosed", err)
		}
	case <-time.After(resumeWait):
		t.Fatal("server's blocked Read did not return")
	}
}
