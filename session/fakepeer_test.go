package session

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

// fakePeer is a hand-driven braid peer built on package frame. It performs
// the HELLO exchange itself, then lets a test write arbitrary frames or
// bytes and inspect every frame the session under test sends. Frames are
// read by a background goroutine as they arrive, so the session is never
// blocked writing to it.
type fakePeer struct {
	t     testing.TB
	conn  net.Conn       // the fake peer's end of the connection
	sconn net.Conn       // the session's end
	sess  *Session       // the session under test
	hello frame.Settings // the HELLO the session sent

	answerPings atomic.Bool // answer the session's PINGs with ACKs

	wmu sync.Mutex // serializes writes to conn

	mu        sync.Mutex
	countOnly bool          // keep only counters, not the frames (floods)
	frames    []frame.Frame // every frame after the HELLO, payloads copied
	counts    map[frame.Type]int
	resets    map[frame.ErrorCode]int
	data      map[uint32]int    // DATA payload bytes per stream
	credit    map[uint32]uint64 // WINDOW_UPDATE deltas per stream (0: session)
	goaways   []frame.Frame
	pings     []uint64        // opaque of each PING (not ACK) the session sent
	acks      map[uint64]bool // opaque of each PING ACK the session sent
	readErr   error           // why the reader stopped
	notify    chan struct{}
	done      chan struct{} // closed when the reader goroutine exits
}

// fakeOpts configures newFakePeer.
type fakeOpts struct {
	client       bool            // the fake peer is the client; the session under test is the Server
	hello        *frame.Settings // the HELLO the fake sends; nil means fakeHello()
	noPingAnswer bool            // never answer the session's PINGs
	countOnly    bool            // don't keep frames, only counters
}

// fakeHello returns valid, generous settings for the fake peer's HELLO.
func fakeHello() frame.Settings {
	return frame.Settings{
		Magic:              []byte(frame.Magic),
		Version:            frame.Version,
		InitialWindow:      256 << 10,
		MaxFrameSize:       64 << 10,
		MaxIncomingStreams: 1000,
		SessionWindow:      16 << 20,
	}
}

// newFakePeer connects a fake peer to a new session (Server if o.client,
// else Client) over loopback TCP and completes the handshake. Everything
// is torn down when the test ends.
func newFakePeer(t testing.TB, cfg *Config, o fakeOpts) *fakePeer {
	t.Helper()
	mine, theirs := tcpPair(t)
	return newFakePeerOn(t, mine, theirs, cfg, o)
}

// newFakePeerOn is newFakePeer over a given connection: mine is the fake
// peer's end, theirs the session's. It works inside a synctest bubble when
// both ends are a net.Pipe made in the bubble.
func newFakePeerOn(t testing.TB, mine, theirs net.Conn, cfg *Config, o fakeOpts) *fakePeer {
	t.Helper()
	fp := &fakePeer{
		t: t, conn: mine, sconn: theirs,
		countOnly: o.countOnly,
		counts:    make(map[frame.Type]int),
		resets:    make(map[frame.ErrorCode]int),
		data:      make(map[uint32]int),
		acks:      make(map[uint64]bool),
		credit:    make(map[uint32]uint64),
		notify:    make(chan struct{}),
		done:      make(chan struct{}),
	}
	fp.answerPings.Store(!o.noPingAnswer)
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		var s *Session
		var err error
		if o.client {
			s, err = Server(theirs, cfg)
		} else {
			s, err = Client(theirs, cfg)
		}
		ch <- res{s, err}
	}()
	h := fakeHello()
	if o.hello != nil {
		h = *o.hello
	}
	if err := fp.write(frame.Frame{Type: frame.Hello, HasSettings: true, Settings: h}); err != nil {
		t.Fatalf("fake peer: writing HELLO: %v", err)
	}
	rd := frame.NewReader(mine, frame.MaxMaxFrameSize)
	mine.SetReadDeadline(time.Now().Add(failAfter))
	f, err := rd.ReadFrame()
	mine.SetReadDeadline(time.Time{})
	if err != nil {
		t.Fatalf("fake peer: reading the session's HELLO: %v", err)
	}
	if f.Type != frame.Hello || !f.HasSettings {
		t.Fatalf("fake peer: first frame from session is %v, want HELLO", f)
	}
	fp.hello = f.Settings
	fp.hello.Magic = append([]byte(nil), f.Settings.Magic...)
	fp.hello.Compression = append([]frame.Compression(nil), f.Settings.Compression...)
	go fp.readLoop(rd)

	var r res
	select {
	case r = <-ch:
	case <-time.After(failAfter):
		t.Fatal("fake peer: session constructor did not return")
	}
	if r.err != nil {
		mine.Close()
		<-fp.done
		t.Fatalf("fake peer: session handshake: %v", r.err)
	}
	fp.sess = r.s
	t.Cleanup(func() {
		r.s.Close()
		mine.Close()
		<-fp.done
	})
	return fp
}

func (fp *fakePeer) readLoop(rd *frame.Reader) {
	defer close(fp.done)
	defer rd.Close()
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			fp.mu.Lock()
			fp.readErr = err
			fp.signal()
			fp.mu.Unlock()
			return
		}
		if f.Type == frame.Ping && !f.Flags.Has(frame.FlagACK) && fp.answerPings.Load() {
			fp.write(frame.Frame{Type: frame.Ping, Flags: frame.FlagACK, Opaque: f.Opaque})
		}
		fp.mu.Lock()
		fp.counts[f.Type]++
		switch f.Type {
		case frame.Reset:
			fp.resets[f.ErrorCode]++
		case frame.Data:
			fp.data[f.StreamID] += len(f.Payload)
		case frame.WindowUpdate:
			fp.credit[f.StreamID] += uint64(f.WindowDelta)
		case frame.GoAway:
			g := *f
			g.Debug = append([]byte(nil), f.Debug...)
			fp.goaways = append(fp.goaways, g)
		case frame.Ping:
			if !f.Flags.Has(frame.FlagACK) {
				fp.pings = append(fp.pings, f.Opaque)
			} else {
				fp.acks[f.Opaque] = true
			}
		}
		if !fp.countOnly {
			g := *f
			g.Payload = append([]byte(nil), f.Payload...)
			g.Debug = append([]byte(nil), f.Debug...)
			g.Settings.Magic = append([]byte(nil), f.Settings.Magic...)
			g.Settings.Compression = append([]frame.Compression(nil), f.Settings.Compression...)
			fp.frames = append(fp.frames, g)
		}
		fp.signal()
		fp.mu.Unlock()
	}
}

// signal wakes waiters. Called with fp.mu held.
func (fp *fakePeer) signal() {
	close(fp.notify)
	fp.notify = make(chan struct{})
}

// write encodes and writes frames to the session in one Write.
func (fp *fakePeer) write(fs ...frame.Frame) error {
	var b []byte
	for i := range fs {
		b = fs[i].Append(b)
	}
	return fp.writeRaw(b)
}

// writeRaw writes b to the session as is.
func (fp *fakePeer) writeRaw(b []byte) error {
	fp.wmu.Lock()
	defer fp.wmu.Unlock()
	fp.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := fp.conn.Write(b)
	return err
}

// waitFor waits until cond, called with fp.mu held, is true. It fails the
// test if the session's connection ends, or 10 s pass, first.
func (fp *fakePeer) waitFor(what string, cond func() bool) {
	fp.t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		fp.mu.Lock()
		ok, ended, err, ch := cond(), fp.readErr != nil, fp.readErr, fp.notify
		fp.mu.Unlock()
		if ok {
			return
		}
		if ended {
			fp.t.Fatalf("fake peer: connection ended (%v) before %s", err, what)
		}
		select {
		case <-ch:
		case <-timeout.C:
			fp.t.Fatalf("fake peer: timed out waiting for %s", what)
		}
	}
}

// waitGoAway waits for a GOAWAY from the session, even if the connection
// closes right after it, and returns the first one.
func (fp *fakePeer) waitGoAway() frame.Frame {
	fp.t.Helper()
	select {
	case <-fp.done:
	case <-time.After(10 * time.Second):
		fp.t.Fatal("fake peer: the session did not close the connection")
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if len(fp.goaways) == 0 {
		fp.t.Fatalf("fake peer: connection ended (%v) without a GOAWAY", fp.readErr)
	}
	return fp.goaways[0]
}

// findFrame returns the first recorded frame matching match.
func (fp *fakePeer) findFrame(match func(*frame.Frame) bool) (frame.Frame, bool) {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.findFrameLocked(match)
}

// findFrameLocked is findFrame for callers holding fp.mu (waitFor's cond).
func (fp *fakePeer) findFrameLocked(match func(*frame.Frame) bool) (frame.Frame, bool) {
	for i := range fp.frames {
		if match(&fp.frames[i]) {
			return fp.frames[i], true
		}
	}
	return frame.Frame{}, false
}

// waitAckOrEnd waits for the session's ACK of PING opaque, or for the
// connection to end, and reports whether the ACK came.
func (fp *fakePeer) waitAckOrEnd(opaque uint64) bool {
	fp.t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		fp.mu.Lock()
		acked := fp.acks[opaque]
		ended, ch := fp.readErr != nil, fp.notify
		fp.mu.Unlock()
		if acked {
			return true
		}
		if ended {
			return false
		}
		select {
		case <-ch:
		case <-timeout.C:
			fp.t.Fatalf("fake peer: no ACK of PING %#x and the connection is still open", opaque)
		}
	}
}

// numResets returns how many RESETs with code the session has sent.
func (fp *fakePeer) numResets(code frame.ErrorCode) int {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.resets[code]
}

// ping sends a PING and waits for the session's ACK.
func (fp *fakePeer) ping(opaque uint64) {
	fp.t.Helper()
	if err := fp.write(frame.Frame{Type: frame.Ping, Opaque: opaque}); err != nil {
		fp.t.Fatalf("fake peer: writing PING: %v", err)
	}
	fp.waitFor("PING ACK", func() bool { return fp.acks[opaque] })
}

// syn returns a DATA frame opening stream id with payload.
func syn(id uint32, payload []byte, flags frame.Flags) frame.Frame {
	return frame.Frame{Type: frame.Data, StreamID: id, Flags: frame.FlagSYN | flags, Payload: payload}
}

// data returns a DATA frame on stream id.
func data(id uint32, payload []byte, flags frame.Flags) frame.Frame {
	return frame.Frame{Type: frame.Data, StreamID: id, Flags: flags, Payload: payload}
}
