package session_test

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/internal/cutrelay"
	"github.com/braidmux/braid/session"
)

// Security and bounds of resumable sessions (issue #12, SPEC.md §16):
// forged and replayed resumes, unknown and expired sessions, expiry of
// blocked calls, memory held while detached, MaxDetachedSessions.
//
// Tests that need real sockets (a relay that tees bytes, RST on a cut)
// run over loopback TCP; tests about timing run in a synctest bubble over
// net.Pipe, with an in-memory net.Listener (rsMemListener), so their
// timeouts cost no wall time and their bounds are exact. Goroutine leaks
// are caught by goleak (main_test.go) and, in bubbles, by synctest.Test.

// ---- loopback relay --------------------------------------------------

// rsRecord is how many bytes of each direction of each relayed
// connection the relay keeps, so a test can read the wire (an attacker's
// view) and replay it.
const rsRecord = 256 << 10

// rsConn returns the i-th connection relayed by r (0 = the first),
// waiting for it to exist.
func rsConn(t *testing.T, r *cutrelay.Relay, i int) *cutrelay.Conn {
	t.Helper()
	var c *cutrelay.Conn
	rsWaitFor(t, 10*time.Second, "relayed connection", func() bool {
		c = r.Conn(i)
		return c != nil
	})
	return c
}

// rsCut returns a function that resets every connection through r.
func rsCut(r *cutrelay.Relay) func() {
	return func() { r.Cut() }
}

// ---- sessions over the relay -----------------------------------------

// rsTCP is a resumable session over loopback TCP, through a relay; the
// server side echoes every stream.
type rsTCP struct {
	ln     net.Listener // the Listener's own socket: attackers dial it directly
	l      *session.Listener
	relay  *cutrelay.Relay
	cs, ss *session.Session
	id     []byte // the session ID, read off the wire
}

func rsStartTCP(t *testing.T, cfg *session.Config) *rsTCP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &rsTCP{ln: ln, l: session.NewListener(ln, cfg)}
	t.Cleanup(func() { x.l.Close() })
	x.relay = cutrelay.Start(t, ln.Addr().String(), &cutrelay.Config{Record: rsRecord})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if x.cs, err = session.Dial(ctx, x.relay.Dial, cfg); err != nil {
		t.Fatal(err)
	}
	if x.ss, err = x.l.Accept(); err != nil {
		x.cs.Close()
		t.Fatal(err)
	}
	var echoes sync.WaitGroup
	echoes.Add(1)
	go func() {
		defer echoes.Done()
		for {
			st, err := x.ss.AcceptStream(context.Background())
			if err != nil {
				return
			}
			echoes.Add(1)
			go func() {
				defer echoes.Done()
				defer st.Close()
				io.Copy(st, st)
				st.CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() {
		x.cs.Close()
		x.ss.Close()
		echoes.Wait()
	})

	// The server's HELLO is the first frame it sent; its resume_id is
	// the session ID, in the clear.
	f, err := frame.NewReader(bytes.NewReader(rsConn(t, x.relay, 0).Recorded(cutrelay.ToClient)), frame.MaxMaxFrameSize).ReadFrame()
	if err != nil || f.Type != frame.Hello || len(f.Settings.ResumeID) == 0 {
		t.Fatalf("the server's first frame is not a HELLO with a resume_id: %v, %v", f, err)
	}
	x.id = append([]byte(nil), f.Settings.ResumeID...)
	return x
}

// staysOn checks that the session still runs on the relay's connection
// i (numbered from 0) after refused attempts (what): 256 KiB echoed go up
// and come down that connection, the relay carried no other connection
// after it, and each side counted i resumes.
func (x *rsTCP) staysOn(t *testing.T, i int, what string) {
	t.Helper()
	conn := rsConn(t, x.relay, i)
	up, down := conn.Carried(cutrelay.ToServer), conn.Carried(cutrelay.ToClient)
	rsEcho(t, x.cs, 256<<10, nil)
	if d := conn.Carried(cutrelay.ToServer) - up; d < 256<<10 {
		t.Errorf("after %s, %d bytes went up connection %d, want ≥ %d: was it dropped?", what, d, i, 256<<10)
	}
	if d := conn.Carried(cutrelay.ToClient) - down; d < 256<<10 {
		t.Errorf("after %s, %d bytes came down connection %d, want ≥ %d", what, d, i, 256<<10)
	}
	if n := x.relay.Accepted(); n != i+1 {
		t.Errorf("after %s, %d connections relayed, want %d (no reconnection)", what, n, i+1)
	}
	if c, s := x.cs.Stats().Resumes, x.ss.Stats().Resumes; c != uint64(i) || s != uint64(i) {
		t.Errorf("Resumes = %d (client), %d (server) after %s; want %d", c, s, what, i)
	}
}

// rsEcho sends n bytes through a new echo stream of s and checks they
// come back intact. cut, if not nil, is called once a quarter of them have
// come back.
func rsEcho(t *testing.T, s *session.Session, n int, cut func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s.OpenStream(ctx)
	if err != nil {
		t.Fatal("OpenStream:", err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(30 * time.Second))
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n)}).Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(data)
		if err == nil {
			err = st.CloseWrite()
		}
		werr <- err
	}()
	got := make([]byte, 0, n)
	buf := make([]byte, 64<<10)
	for {
		k, err := st.Read(buf)
		got = append(got, buf[:k]...)
		if cut != nil && len(got) >= n/4 {
			cut()
			cut = nil
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("echo: Read after %d of %d bytes: %v", len(got), n, err)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal("echo: Write:", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo: got %d bytes back, want the %d sent, equal", len(got), n)
	}
}

// rsWaitFor polls cond until it holds or timeout passes.
func rsWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rsWaitResumes waits until both sides count want resumes.
func rsWaitResumes(t *testing.T, cs, ss *session.Session, want uint64) {
	t.Helper()
	rsWaitFor(t, 10*time.Second, "both sides to count the resume", func() bool {
		return cs.Stats().Resumes == want && ss.Stats().Resumes == want
	})
}

// ---- a raw peer ------------------------------------------------------

// rsRaw is an attacker's connection, speaking frames by hand.
type rsRaw struct {
	t    *testing.T
	conn net.Conn
	rd   *frame.Reader
}

func rsDialRaw(t *testing.T, addr string) *rsRaw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rsRaw{t: t, conn: c, rd: frame.NewReader(c, frame.MaxMaxFrameSize)}
}

func (r *rsRaw) send(fs ...*frame.Frame) {
	r.t.Helper()
	var b []byte
	for _, f := range fs {
		b = f.Append(b)
	}
	if _, err := r.conn.Write(b); err != nil {
		r.t.Fatal("raw peer: write:", err)
	}
}

// next reads a frame and returns a copy of what the tests look at.
func (r *rsRaw) next() (frame.Frame, error) {
	f, err := r.rd.ReadFrame()
	if err != nil {
		return frame.Frame{}, err
	}
	c := frame.Frame{Type: f.Type, HasResume: f.HasResume, Resume: f.Resume, Debug: bytes.Clone(f.Debug)}
	c.Resume.SessionID = bytes.Clone(f.Resume.SessionID)
	c.Resume.Nonce = bytes.Clone(f.Resume.Nonce)
	c.Resume.MAC = bytes.Clone(f.Resume.MAC)
	return c, nil
}

// expect reads a frame and fails unless it is a RESUME of the given step.
func (r *rsRaw) expect(step frame.ResumeStep) frame.Frame {
	r.t.Helper()
	f, err := r.next()
	if err != nil {
		r.t.Fatalf("raw peer: waiting for RESUME %v: %v", step, err)
	}
	if f.Type != frame.Resume || !f.HasResume || f.Resume.Step != step {
		r.t.Fatalf("raw peer: got %v, want RESUME %v", &f, step)
	}
	return f
}

// expectClosed fails unless the server closes the connection next.
func (r *rsRaw) expectClosed() {
	r.t.Helper()
	if f, err := r.next(); err == nil {
		r.t.Fatalf("raw peer: got %v, want the connection closed", &f)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		r.t.Fatalf("raw peer: the server did not close the connection: %v", err)
	}
}

func rsRequest(id []byte) *frame.Frame {
	nonce := make([]byte, 16)
	crand.Read(nonce)
	return &frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeRequest, SessionID: id, Nonce: nonce}}
}

func rsProof(received uint64, mac []byte) *frame.Frame {
	return &frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeProof, Received: received, MAC: mac}}
}

// rsNotResumed fails unless err says the session could not be resumed
// and matches net.ErrClosed.
func rsNotResumed(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, session.ErrNotResumed) || !errors.Is(err, net.ErrClosed) {
		t.Errorf("%s: err = %v; want one matching session.ErrNotResumed and net.ErrClosed", what, err)
	}
}

// ---- 1. forged resume ------------------------------------------------

// TestResumeForgedProofRefused: an attacker who read the session ID off
// the wire but does not hold the secret asks to resume the session with a
// made-up proof. The Listener refuses ("resume proof does not verify"),
// and the session does not notice: it keeps its connection (data still
// moves over the first relayed connection) and counts no resume. A real
// cut afterwards is resumed by the real client, data intact.
func TestResumeForgedProofRefused(t *testing.T) {
	x := rsStartTCP(t, nil)
	rsEcho(t, x.cs, 64<<10, nil)

	mac32 := make([]byte, 32)
	crand.Read(mac32)
	forgeries := []struct {
		name     string
		received uint64
		mac      []byte
	}{
		{"random MAC", 0, mac32},
		{"empty MAC", 0, nil},
		{"short MAC", 1, mac32[:8]},
		{"huge received", 1 << 62, mac32},
	}
	for _, fg := range forgeries {
		raw := rsDialRaw(t, x.ln.Addr().String())
		raw.send(rsRequest(x.id))
		ch := raw.expect(frame.ResumeChallenge)
		if len(ch.Resume.Nonce) < 16 {
			t.Fatalf("%s: challenge nonce is %d bytes, want ≥ 16", fg.name, len(ch.Resume.Nonce))
		}
		raw.send(rsProof(fg.received, fg.mac))
		no := raw.expect(frame.ResumeRefused)
		if !strings.Contains(string(no.Debug), "does not verify") {
			t.Errorf("%s: REFUSED debug = %q, want it to say the proof does not verify", fg.name, no.Debug)
		}
		raw.expectClosed()
		raw.conn.Close()
	}

	// The session never left its first connection.
	x.staysOn(t, 0, "the forgeries")

	// A real cut mid-transfer: the real client resumes.
	rsEcho(t, x.cs, 4<<20, rsCut(x.relay))
	rsWaitResumes(t, x.cs, x.ss, 1)
	if x.cs.IsClosed() || x.ss.IsClosed() {
		t.Fatalf("session ended: client %v, server %v", x.cs.Err(), x.ss.Err())
	}
}

// ---- 2. replayed resume ----------------------------------------------

// TestResumeReplayRefused: the bytes the real client sent on its
// reconnection (REQUEST, PROOF, then the session's frames), replayed on a
// fresh connection, are refused: the server's challenge nonce is fresh,
// so the old proof does not verify. The real session is unaffected and
// resumes again after another cut.
func TestResumeReplayRefused(t *testing.T) {
	x := rsStartTCP(t, nil)
	rsEcho(t, x.cs, 4<<20, rsCut(x.relay))
	rsWaitResumes(t, x.cs, x.ss, 1)

	second := rsConn(t, x.relay, 1)
	rec := second.Recorded(cutrelay.ToServer)
	// What was recorded is a resume handshake: REQUEST for this session,
	// then PROOF; the server's CHALLENGE went the other way.
	rd := frame.NewReader(bytes.NewReader(rec), frame.MaxMaxFrameSize)
	f, err := rd.ReadFrame()
	if err != nil || f.Type != frame.Resume || f.Resume.Step != frame.ResumeRequest || !bytes.Equal(f.Resume.SessionID, x.id) {
		t.Fatalf("the reconnection's first frame is %v (%v), want RESUME REQUEST for %x", f, err, x.id)
	}
	if f, err = rd.ReadFrame(); err != nil || f.Type != frame.Resume || f.Resume.Step != frame.ResumeProof {
		t.Fatalf("the reconnection's second frame is %v (%v), want RESUME PROOF", f, err)
	}
	handshake := rec[:rd.BytesRead()]
	f, err = frame.NewReader(bytes.NewReader(second.Recorded(cutrelay.ToClient)), frame.MaxMaxFrameSize).ReadFrame()
	if err != nil || f.Type != frame.Resume || f.Resume.Step != frame.ResumeChallenge {
		t.Fatalf("the server's first answer on the reconnection is %v (%v), want RESUME CHALLENGE", f, err)
	}
	oldNonce := bytes.Clone(f.Resume.Nonce)

	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"handshake only", handshake},
		{"everything recorded", rec},
	} {
		raw := rsDialRaw(t, x.ln.Addr().String())
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			raw.conn.Write(tc.bytes) // fails once the server hangs up
		}()
		ch := raw.expect(frame.ResumeChallenge)
		if bytes.Equal(ch.Resume.Nonce, oldNonce) {
			t.Errorf("%s: the server's challenge nonce repeats the recorded one", tc.name)
		}
		no := raw.expect(frame.ResumeRefused)
		if !strings.Contains(string(no.Debug), "does not verify") {
			t.Errorf("%s: REFUSED debug = %q, want it to say the proof does not verify", tc.name, no.Debug)
		}
		raw.expectClosed()
		raw.conn.Close()
		<-wrote
	}

	// The session stays on its second connection, untouched.
	x.staysOn(t, 1, "the replays")

	// And it resumes again.
	rsEcho(t, x.cs, 4<<20, rsCut(x.relay))
	rsWaitResumes(t, x.cs, x.ss, 2)
}

// ---- 3. unknown and expired sessions ---------------------------------

// TestResumeUnknownSessionRefused: a REQUEST for a session the Listener
// does not know is refused at once, with a reason, not left to the
// handshake timeout.
func TestResumeUnknownSessionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := session.DefaultConfig()
	cfg.HandshakeTimeout = 30 * time.Second
	l := session.NewListener(ln, cfg)
	defer l.Close()
	for _, idLen := range []int{16, 1, 0, frame.MaxResumeField} {
		id := make([]byte, idLen)
		crand.Read(id)
		raw := rsDialRaw(t, ln.Addr().String())
		start := time.Now()
		raw.send(rsRequest(id))
		no := raw.expect(frame.ResumeRefused)
		if len(no.Debug) == 0 {
			t.Errorf("id %x: REFUSED carries no reason", id)
		}
		raw.expectClosed()
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("id %x: refused after %v; want at once", id, d)
		}
		raw.conn.Close()
		t.Logf("id of %d bytes: refused in %v: %q", idLen, time.Since(start), no.Debug)
	}
}

// TestResumeExpiredSessionStopsClient: the server's session expired
// (its ResumeTimeout is short) while the client could not reach it; when
// the client gets through, the server refuses, and the client gives up at
// once instead of retrying until its own, much longer, ResumeTimeout:
// every blocked call fails with ErrNotResumed.
func TestResumeExpiredSessionStopsClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			serverTimeout = 2 * time.Second
			clientTimeout = 5 * time.Minute
		)
		scfg, ccfg := rsSmallConfig(), rsSmallConfig()
		scfg.ResumeTimeout = serverTimeout
		ccfg.ResumeTimeout = clientTimeout
		x := rsStartPipe(t, scfg, ccfg)
		defer x.close()
		ctx := context.Background()
		a, err := x.cs.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.ss.AcceptStream(ctx); err != nil {
			t.Fatal(err)
		}
		calls := []*rsCall{
			rsGo("client Read", func() error { _, err := a.Read(make([]byte, 10)); return err }),
			rsGo("client Write", func() error { _, err := a.Write(make([]byte, 4<<20)); return err }),
			rsGo("client AcceptStream", func() error { _, err := x.cs.AcceptStream(ctx); return err }),
		}
		synctest.Wait()
		rsNoneReturned(t, calls)

		x.link.down.Store(true)
		x.link.cut()
		calls = append(calls, rsGo("client Ping", func() error { _, err := x.cs.Ping(ctx); return err }))
		time.Sleep(serverTimeout + time.Second)
		synctest.Wait()
		if !x.ss.IsClosed() {
			t.Fatalf("server session still open %v after the cut; its ResumeTimeout is %v", serverTimeout+time.Second, serverTimeout)
		}
		rsNotResumed(t, "server session", x.ss.Err())
		if x.cs.IsClosed() {
			t.Fatalf("client session ended before reaching the server: %v", x.cs.Err())
		}
		rsNoneReturned(t, calls)

		x.link.down.Store(false)
		up := time.Now()
		select {
		case <-x.cs.CloseChan():
		case <-time.After(time.Minute):
			t.Fatal("client session still open a minute after the server became reachable")
		}
		ended := time.Now()
		firstDial := x.link.lastDial()
		t.Logf("client: reachable again at +0, dialled at +%v, ended at +%v: %v", firstDial.Sub(up), ended.Sub(up), x.cs.Err())
		if d := ended.Sub(firstDial); d > time.Second {
			t.Errorf("client ended %v after reaching the server; want at once on the refusal", d)
		}
		if x.link.dials.Load() != 2 {
			t.Errorf("%d successful dials, want 2 (the session, one refused resume)", x.link.dials.Load())
		}
		rsNotResumed(t, "client session", x.cs.Err())
		synctest.Wait()
		for _, c := range calls {
			if !c.returned() {
				t.Errorf("%s still blocked after the session ended", c.name)
				continue
			}
			rsNotResumed(t, c.name, c.err)
			if c.at.After(ended) {
				t.Errorf("%s returned %v after the session ended", c.name, c.at.Sub(ended))
			}
		}
		// It stopped retrying.
		n := x.link.attempts.Load()
		time.Sleep(time.Minute)
		if m := x.link.attempts.Load(); m != n {
			t.Errorf("client dialled %d more times after the refusal", m-n)
		}
	})
}

// ---- 4. expiry ---------------------------------------------------------

// TestResumeExpiryFailsBlockedCalls: the connection breaks and the client
// can never dial again. Until ResumeTimeout passes nothing fails (the
// session is only paused, though deadlines still fire); then every
// blocked call on both sides — Read, Write with its window full,
// AcceptStream, OpenStream waiting for backlog room, Ping — fails within
// ResumeTimeout + 1 s with ErrNotResumed (and net.ErrClosed). A side's
// OpenStream waits while its peer's backlog is full, when the peer's
// AcceptStream would not wait, so the waiting OpenStream and AcceptStream
// are on one side at a time: it runs twice, once per side.
func TestResumeExpiryFailsBlockedCalls(t *testing.T) {
	for _, clientOpens := range []bool{true, false} {
		name := "client-OpenStream-waits"
		if !clientOpens {
			name = "server-OpenStream-waits"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { rsExpiry(t, clientOpens) })
		})
	}
}

func rsExpiry(t *testing.T, clientOpens bool) {
	const timeout = 5 * time.Second
	scfg, ccfg := rsSmallConfig(), rsSmallConfig()
	scfg.ResumeTimeout, ccfg.ResumeTimeout = timeout, timeout
	if clientOpens {
		scfg.AcceptBacklog = 1
	} else {
		ccfg.AcceptBacklog = 1
	}
	x := rsStartPipe(t, scfg, ccfg)
	defer x.close()
	ctx := context.Background()

	// a: opened by the client; b: by the server. Each side writes to one
	// (its peer never reads it) and reads the other way of it (its peer
	// never writes).
	a, err := x.cs.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.ss.AcceptStream(ctx); err != nil {
		t.Fatal(err)
	}
	sb, err := x.ss.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.cs.AcceptStream(ctx); err != nil {
		t.Fatal(err)
	}
	// idle: opened by the client, accepted, never written: for a deadline.
	idle, err := x.cs.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.ss.AcceptStream(ctx); err != nil {
		t.Fatal(err)
	}
	// The opener's OpenStream waits for room in its peer's backlog, and
	// its AcceptStream for a stream (its own backlog is empty); the
	// peer's AcceptStream would not wait.
	opener, on := x.cs, "client"
	if !clientOpens {
		opener, on = x.ss, "server"
	}
	synctest.Wait() // the accepts are acknowledged
	// One stream the peer never accepts fills its backlog of 1.
	if _, err := opener.OpenStream(ctx); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 4<<20)
	calls := []*rsCall{
		rsGo("client Write", func() error { _, err := a.Write(big); return err }),
		rsGo("client Read", func() error { _, err := a.Read(make([]byte, 10)); return err }),
		rsGo("server Write", func() error { _, err := sb.Write(big); return err }),
		rsGo("server Read", func() error { _, err := sb.Read(make([]byte, 10)); return err }),
		rsGo(on+" OpenStream", func() error { _, err := opener.OpenStream(ctx); return err }),
		rsGo(on+" AcceptStream", func() error { _, err := opener.AcceptStream(ctx); return err }),
	}
	synctest.Wait()
	rsNoneReturned(t, calls)

	x.link.down.Store(true)
	x.link.cut()
	cut := time.Now()
	calls = append(calls,
		rsGo("client Ping", func() error { _, err := x.cs.Ping(ctx); return err }),
		rsGo("server Ping", func() error { _, err := x.ss.Ping(ctx); return err }),
	)
	// Deadlines still fire while detached, and end nothing else.
	idle.SetReadDeadline(cut.Add(time.Second))
	dl := rsGo("client Read with deadline", func() error { _, err := idle.Read(make([]byte, 10)); return err })

	time.Sleep(timeout - time.Millisecond)
	synctest.Wait()
	if !dl.returned() || !errors.Is(dl.err, os.ErrDeadlineExceeded) {
		t.Errorf("a Read with a deadline 1 s after the cut, while detached: returned %v, err %v; want os.ErrDeadlineExceeded", dl.returned(), dl.err)
	}
	rsNoneReturned(t, calls)
	if x.cs.IsClosed() || x.ss.IsClosed() {
		t.Fatalf("session ended before ResumeTimeout: client %v, server %v", x.cs.Err(), x.ss.Err())
	}

	time.Sleep(time.Second + time.Millisecond)
	synctest.Wait()
	for _, c := range calls {
		if !c.returned() {
			t.Errorf("%s still blocked ResumeTimeout + 1 s after the cut", c.name)
			continue
		}
		rsNotResumed(t, c.name, c.err)
		if d := c.at.Sub(cut); d < timeout || d > timeout+time.Second {
			t.Errorf("%s returned %v after the cut; want within [ResumeTimeout, ResumeTimeout + 1 s] = [%v, %v]", c.name, d, timeout, timeout+time.Second)
		}
	}
	rsNotResumed(t, "client session", x.cs.Err())
	rsNotResumed(t, "server session", x.ss.Err())
}

// ---- 5. memory while detached ----------------------------------------

// TestResumeDetachedMemoryBounded: with both directions of 8 streams
// stuck (nobody reads, so every window is full) when the connection
// dies, the heap held while both sides wait to resume stays within what
// the windows allow.
//
// The bound, per side: received data not yet read, at most its own
// MaxSessionWindow; plus its replay buffer, the bytes it sent that the
// peer has not acknowledged, which the session caps at the peer's session
// window + replaySlack (resume.go: frames received but not acknowledged
// yet, and control frames). Both sides live in this process, so the heap
// may grow by twice that, plus a small margin for the sessions' fixed
// state (structs, frame reader buffers, per-stream state). Each writer
// has 4 MiB to send per stream, 32 MiB per side: a session that kept
// whole Writes instead of windows would hold far more than the bound.
func TestResumeDetachedMemoryBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			window      = 4 << 20 // MaxSessionWindow, both sides
			replaySlack = 4 << 20 // session's replaySlack (resume.go)
			margin      = 1 << 20
			streams     = 8
			perStream   = 4 << 20
		)
		cfg := rsSmallConfig()
		cfg.MaxSessionWindow = window
		cfg.InitialStreamWindow = 1 << 20 // 8 streams × 1 MiB > 4 MiB: the session window binds
		cfg.MaxStreamWindow = 1 << 20
		big := make([]byte, perStream)
		rand.NewChaCha8([32]byte{5}).Read(big)

		before := rsHeap()
		x := rsStartPipe(t, cfg, cfg)
		defer x.close()
		ctx := context.Background()
		var calls []*rsCall
		for range streams {
			cst, err := x.cs.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sst, err := x.ss.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			calls = append(calls,
				rsGo("client Write", func() error { _, err := cst.Write(big); return err }),
				rsGo("server Write", func() error { _, err := sst.Write(big); return err }),
			)
		}
		synctest.Wait() // every writer stuck: windows full
		rsNoneReturned(t, calls)
		cst, sst := x.cs.Stats(), x.ss.Stats()
		t.Logf("in flight at the cut: client received %d B, server received %d B", cst.DataReceived, sst.DataReceived)
		if cst.DataReceived < window*3/4 || sst.DataReceived < window*3/4 {
			t.Fatalf("windows not full at the cut: client received %d B, server %d B; want ≥ %d each", cst.DataReceived, sst.DataReceived, window*3/4)
		}

		x.link.down.Store(true)
		x.link.cut()
		synctest.Wait()
		detached := rsHeap()
		if x.cs.IsClosed() || x.ss.IsClosed() {
			t.Fatalf("session ended instead of waiting to resume: client %v, server %v", x.cs.Err(), x.ss.Err())
		}
		growth := int64(detached) - int64(before)
		bound := int64(2*(window+window+replaySlack) + margin)
		t.Logf("heap: %d B before the session, %d B while detached: growth %d B (%.1f MiB), bound %d B (%.1f MiB)",
			before, detached, growth, float64(growth)/(1<<20), bound, float64(bound)/(1<<20))
		if growth > bound {
			t.Errorf("a detached session holds %d B of heap; its windows allow %d B", growth, bound)
		}
		x.close()
		synctest.Wait()
	})
}

// rsHeap returns the live heap after collecting garbage (twice: sync.Pool
// keeps free buffers through one GC).
func rsHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// ---- 6. MaxDetachedSessions ------------------------------------------

// TestResumeMaxDetachedSessions: a Listener keeps at most 2 sessions
// waiting; when a third detaches, the one that has waited longest ends
// with ErrNotResumed, saying why, and its client is refused; the other two
// resume.
func TestResumeMaxDetachedSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		scfg := rsSmallConfig()
		scfg.MaxDetachedSessions = 2
		ln := newRSMemListener()
		l := session.NewListener(ln, scfg)
		defer l.Close()
		ctx := context.Background()
		type peer struct {
			link   *rsLink
			cs, ss *session.Session
			cst    *session.Stream // client end of an echo stream
			sst    *session.Stream
		}
		var peers []*peer
		defer func() {
			for _, p := range peers {
				p.cs.Close()
				p.ss.Close()
			}
		}()
		for range 3 {
			p := &peer{link: &rsLink{ln: ln}}
			var err error
			if p.cs, err = session.Dial(ctx, p.link.dial, rsSmallConfig()); err != nil {
				t.Fatal(err)
			}
			if p.ss, err = l.Accept(); err != nil {
				t.Fatal(err)
			}
			peers = append(peers, p)
			if p.cst, err = p.cs.OpenStream(ctx); err != nil {
				t.Fatal(err)
			}
			if p.sst, err = p.ss.AcceptStream(ctx); err != nil {
				t.Fatal(err)
			}
		}
		reads := make([]*rsCall, len(peers))
		for i, p := range peers {
			p.link.down.Store(true)
			p.link.cut()
			reads[i] = rsGo("server Read", func() error { _, err := p.sst.Read(make([]byte, 1)); return err })
			synctest.Wait()              // detached
			time.Sleep(time.Millisecond) // so the Listener can tell who waited longest
		}
		synctest.Wait()
		if !peers[0].ss.IsClosed() {
			t.Fatal("the oldest detached session is still waiting; the Listener keeps at most 2")
		}
		err := peers[0].ss.Err()
		rsNotResumed(t, "oldest session", err)
		if err != nil && !strings.Contains(err.Error(), "MaxDetachedSessions") {
			t.Errorf("oldest session's error %q does not say it was one too many (MaxDetachedSessions)", err)
		}
		if !reads[0].returned() {
			t.Error("a Read on the oldest session is still blocked")
		} else {
			rsNotResumed(t, "Read on the oldest session", reads[0].err)
		}
		for i, p := range peers[1:] {
			if p.ss.IsClosed() {
				t.Fatalf("session %d ended while detached: %v", i+1, p.ss.Err())
			}
		}

		for _, p := range peers {
			p.link.down.Store(false)
		}
		select {
		case <-peers[0].cs.CloseChan():
			rsNotResumed(t, "oldest session's client", peers[0].cs.Err())
		case <-time.After(time.Minute):
			t.Error("the oldest session's client was not refused")
		}
		for i, p := range peers[1:] {
			deadline := time.Now().Add(time.Minute)
			for p.cs.Stats().Resumes != 1 || p.ss.Stats().Resumes != 1 {
				if time.Now().After(deadline) {
					t.Fatalf("session %d did not resume: client %v, server %v", i+1, p.cs.Err(), p.ss.Err())
				}
				time.Sleep(10 * time.Millisecond)
			}
			msg := []byte("still here")
			if _, err := p.cst.Write(msg); err != nil {
				t.Fatalf("session %d: Write after resume: %v", i+1, err)
			}
			synctest.Wait()
			if !reads[i+1].returned() || reads[i+1].err != nil {
				t.Fatalf("session %d: the server's Read across the outage: returned %v, err %v", i+1, reads[i+1].returned(), reads[i+1].err)
			}
		}
	})
}

// ---- in-memory transport for synctest ---------------------------------

// rsMemListener is a net.Listener whose connections are net.Pipes made by
// connect: usable inside a synctest bubble.
type rsMemListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newRSMemListener() *rsMemListener {
	return &rsMemListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *rsMemListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *rsMemListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *rsMemListener) Addr() net.Addr { return rsAddr{} }

type rsAddr struct{}

func (rsAddr) Network() string { return "mem" }
func (rsAddr) String() string  { return "mem" }

// connect returns both ends of a new connection whose server end Accept
// returns.
func (l *rsMemListener) connect(ctx context.Context) (client, server net.Conn, err error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, s, nil
	case <-l.done:
		err = net.ErrClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	c.Close()
	s.Close()
	return nil, nil, err
}

// rsLink is a client's way to an rsMemListener: its dial func fails while
// down, and cut breaks every connection it made. It keeps the first bytes
// the client read on its first connection (the server's HELLO).
type rsLink struct {
	ln       *rsMemListener
	down     atomic.Bool
	attempts atomic.Int32 // dial calls
	dials    atomic.Int32 // successful ones

	mu    sync.Mutex
	conns []net.Conn
	last  time.Time
	hello *rsTeeConn
}

func (k *rsLink) dial(ctx context.Context) (net.Conn, error) {
	k.attempts.Add(1)
	if k.down.Load() {
		return nil, errors.New("test: link down")
	}
	c, s, err := k.ln.connect(ctx)
	if err != nil {
		return nil, err
	}
	k.dials.Add(1)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.conns = append(k.conns, c, s)
	k.last = time.Now()
	if k.hello == nil {
		k.hello = &rsTeeConn{Conn: c}
		return k.hello, nil
	}
	return c, nil
}

// cut closes every connection the link made.
func (k *rsLink) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		c.Close()
	}
	k.conns = nil
}

// lastDial returns when the last successful dial happened.
func (k *rsLink) lastDial() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.last
}

// sessionID returns the resume_id in the server's HELLO, as the client
// read it on its first connection.
func (k *rsLink) sessionID(t *testing.T) []byte {
	t.Helper()
	k.mu.Lock()
	tee := k.hello
	k.mu.Unlock()
	tee.mu.Lock()
	b := bytes.Clone(tee.got)
	tee.mu.Unlock()
	f, err := frame.NewReader(bytes.NewReader(b), frame.MaxMaxFrameSize).ReadFrame()
	if err != nil || f.Type != frame.Hello || len(f.Settings.ResumeID) == 0 {
		t.Fatalf("the server's first frame is not a HELLO with a resume_id: %v, %v", f, err)
	}
	return bytes.Clone(f.Settings.ResumeID)
}

// rsTeeConn keeps the first bytes read from a connection.
type rsTeeConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (c *rsTeeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if len(c.got) < 4<<10 {
		c.got = append(c.got, p[:n]...)
	}
	c.mu.Unlock()
	return n, err
}

// rsPipe is a resumable session over an in-memory link.
type rsPipe struct {
	ln     *rsMemListener
	l      *session.Listener
	link   *rsLink
	cs, ss *session.Session
}

func rsStartPipe(t *testing.T, scfg, ccfg *session.Config) *rsPipe {
	t.Helper()
	x := &rsPipe{ln: newRSMemListener()}
	x.l = session.NewListener(x.ln, scfg)
	x.link = &rsLink{ln: x.ln}
	var err error
	if x.cs, err = session.Dial(context.Background(), x.link.dial, ccfg); err != nil {
		x.l.Close()
		t.Fatal(err)
	}
	if x.ss, err = x.l.Accept(); err != nil {
		x.cs.Close()
		x.l.Close()
		t.Fatal(err)
	}
	return x
}

func (x *rsPipe) close() {
	x.cs.Close()
	x.ss.Close()
	x.l.Close()
}

// rsSmallConfig has small windows, so stuck streams fill them quickly.
func rsSmallConfig() *session.Config {
	cfg := session.DefaultConfig()
	cfg.InitialStreamWindow = 16 << 10
	cfg.MaxStreamWindow = 16 << 10
	cfg.MaxSessionWindow = 64 << 10
	return cfg
}

// ---- blocked calls -----------------------------------------------------

// rsCall is a call running in its own goroutine.
type rsCall struct {
	name string
	done chan struct{}
	err  error
	at   time.Time // when it returned
}

func rsGo(name string, f func() error) *rsCall {
	c := &rsCall{name: name, done: make(chan struct{})}
	go func() {
		err := f()
		c.err, c.at = err, time.Now()
		close(c.done)
	}()
	return c
}

func (c *rsCall) returned() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func rsNoneReturned(t *testing.T, calls []*rsCall) {
	t.Helper()
	for _, c := range calls {
		if c.returned() {
			t.Fatalf("%s returned early: %v", c.name, c.err)
		}
	}
}
