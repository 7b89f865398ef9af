package session

// TestStateTable walks SPEC.md §5.3 table 2 ("what a receiver does with a
// frame for a non-zero stream ID, by its state for that ID") cell by cell.
// Each cell brings a real session's stream into the column's state through
// the public API and the fake peer, sends the row's frame from the fake
// peer, and checks the outcome from outside. Subtests are named
// ROW/COLUMN[/variant]/ROLE[/OPENER]:
//
//	ROLE   server: the session under test is the Server (the fake peer
//	       opens odd IDs, the session even ones); client: the reverse.
//	OPENER peer-opened / self-opened: who opened the stream (the live
//	       columns only; idle columns have no stream).
//
// How each column is reached (setupColumn):
//
//	idle(peer)          the fake opens stream P and the session opens
//	                    stream S (both open); the frame names P+2
//	idle(own)           as above; the frame names S+2
//	open                the fake opens (SYN) and the session accepts, or
//	                    the session opens (OpenStream, SYN seen by the fake)
//	half-closed(local)  open, then Stream.CloseWrite (FIN seen by the fake)
//	half-closed(remote) open, then the fake sends FIN (Read returns io.EOF)
//	closed              both FINs, and NumStreams drops to 0
//
// The cells, one line each, as table 2 gives them. DATA+FIN is table 2's
// "DATA without SYN" row with FIN set. Outcome words: PROTOCOL = session
// error PROTOCOL_ERROR (the fake gets GOAWAY with that code, its
// last_stream_id the last peer-opened ID and a debug text, SPEC.md §9, and
// CloseChan closes); alive = a PING sent after the frame is answered;
// quiet = nothing at all arrives on that stream ID; credited = stream-0
// WINDOW_UPDATEs grant back at least the discarded payload (note 1 to
// table 2); no RESET back = the session sends nothing on the ID (note 3).
//
//	DATA+SYN       idle(peer)           accept: -> open; AcceptStream returns it, Read gets the payload, Write works
//	DATA+SYN       idle(peer)           accept+FIN: -> half-closed(remote); payload, then io.EOF, Write works
//	DATA+SYN       idle(peer)           refuse (MaxIncomingStreams full): RESET REFUSED_STREAM, credited
//	DATA+SYN       idle(own)            PROTOCOL
//	DATA+SYN       open                 PROTOCOL
//	DATA+SYN       half-closed(local)   PROTOCOL
//	DATA+SYN       half-closed(remote)  PROTOCOL
//	DATA+SYN       closed               PROTOCOL
//	DATA           idle(peer)           PROTOCOL
//	DATA           idle(own)            PROTOCOL
//	DATA           open                 deliver: Read gets the payload; alive, no RESET
//	DATA           half-closed(local)   deliver: Read gets the payload; alive, no RESET
//	DATA           half-closed(remote)  RESET STREAM_CLOSED (the only frame on the ID), -> closed (NumStreams 0), credited
//	DATA           closed               ignore: alive, quiet, credited
//	DATA+FIN       idle(peer)           PROTOCOL
//	DATA+FIN       idle(own)            PROTOCOL
//	DATA+FIN       open                 deliver, -> half-closed(remote): payload, then io.EOF, Write works
//	DATA+FIN       half-closed(local)   deliver, -> closed: payload, then io.EOF, NumStreams 0
//	DATA+FIN       half-closed(remote)  as DATA: RESET STREAM_CLOSED, -> closed, credited
//	DATA+FIN       closed               as DATA: ignore, alive, quiet, credited
//	WINDOW_UPDATE  idle(peer)           PROTOCOL
//	WINDOW_UPDATE  idle(own)            PROTOCOL
//	WINDOW_UPDATE  open                 add credit: a Write blocked on stream credit proceeds; no RESET
//	WINDOW_UPDATE  half-closed(local)   ignore: alive, quiet
//	WINDOW_UPDATE  half-closed(remote)  add credit: a Write blocked on stream credit proceeds; no RESET
//	WINDOW_UPDATE  closed               ignore: alive, quiet
//	RESET          idle(peer)           PROTOCOL
//	RESET          idle(own)            PROTOCOL
//	RESET          open                 -> closed: NumStreams 0, Read fails with the code (Remote), no RESET back
//	RESET          half-closed(local)   -> closed: NumStreams 0, Read fails with the code (Remote), no RESET back
//	RESET          half-closed(remote)  -> closed: NumStreams 0, Read fails with the code (Remote), no RESET back
//	RESET          closed               ignore: alive, quiet
//
// To make the "credited" checks deterministic the session's receive
// windows (session and stream) are stateWindow, and a discarded payload is
// stateWindow/2 bytes: the session window's update threshold (it is not
// auto-tuned, so its updates go out at half the window, SPEC.md §6.3), with
// nothing else consumed before, so one WINDOW_UPDATE covering at least the
// discarded bytes must follow. A WINDOW_UPDATE row cell that adds credit
// checks it with a Write the fake's 1 KiB initial window has blocked.

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
)

const (
	stateWindow  = 64 << 10        // the session's stream and session receive windows
	discardLen   = stateWindow / 2 // a discarded payload: the session window's update threshold
	peerWindow   = 1 << 10         // the fake peer's initial_window: the session's send credit per stream
	stateAppCode = 0x155           // the RESET code the fake peer sends
)

// Table 2's columns.
const (
	colIdlePeer   = "idle(peer)"
	colIdleOwn    = "idle(own)"
	colOpen       = "open"
	colHalfLocal  = "half-closed(local)"
	colHalfRemote = "half-closed(remote)"
	colClosed     = "closed"
)

// stateEnv is one cell's world: a session under test, the fake peer, and
// the stream ID the frame under test names.
type stateEnv struct {
	t        *testing.T
	fp       *fakePeer
	s        *Session
	peerID   uint32  // first ID of the fake peer's parity
	ownID    uint32  // first ID of the session's parity
	lastPeer uint32  // highest ID the fake peer has opened (SYN)
	st       *Stream // the stream in the column's state; nil for idle
	id       uint32  // the ID the frame under test names
	mark     int     // frames recorded before the frame under test
	credit0  uint64  // session credit granted before the frame under test
	pings    uint64  // PINGs sent by alive
}

func newStateEnv(t *testing.T, server bool, edit func(*Config)) *stateEnv {
	t.Helper()
	cfg := &Config{
		InitialStreamWindow: stateWindow,
		MaxStreamWindow:     stateWindow,
		MaxSessionWindow:    stateWindow,
		KeepAliveInterval:   -1,
	}
	if edit != nil {
		edit(cfg)
	}
	h := fakeHello()
	h.InitialWindow = peerWindow
	fp := newFakePeer(t, cfg, fakeOpts{client: server, hello: &h})
	e := &stateEnv{t: t, fp: fp, s: fp.sess, peerID: 2, ownID: 1}
	if server {
		e.peerID, e.ownID = 1, 2
	}
	return e
}

// send writes frames from the fake peer.
func (e *stateEnv) send(fs ...frame.Frame) {
	e.t.Helper()
	if err := e.fp.write(fs...); err != nil {
		e.t.Fatalf("fake peer: writing %v: %v", fs, err)
	}
}

// waitFrame waits until the session has sent a frame matching match.
func (e *stateEnv) waitFrame(what string, match func(*frame.Frame) bool) {
	e.t.Helper()
	e.fp.waitFor(what, func() bool {
		_, ok := e.fp.findFrameLocked(match)
		return ok
	})
}

// openByPeer opens stream id from the fake peer and accepts it.
func (e *stateEnv) openByPeer(id uint32) *Stream {
	e.t.Helper()
	e.send(syn(id, nil, 0))
	st := accept(e.t, e.s)
	if st.ID() != id {
		e.t.Fatalf("accepted stream %d, want %d", st.ID(), id)
	}
	e.lastPeer = id
	// The accept acknowledgement goes out now, not after the mark.
	e.waitFrame(fmt.Sprintf("ACK of stream %d", id), func(f *frame.Frame) bool {
		return f.Type == frame.Data && f.StreamID == id && f.Flags.Has(frame.FlagACK)
	})
	return st
}

// openBySelf opens a stream from the session and waits for its SYN.
func (e *stateEnv) openBySelf() *Stream {
	e.t.Helper()
	st := open(e.t, e.s)
	if st.ID() != e.ownID {
		e.t.Fatalf("opened stream %d, want %d", st.ID(), e.ownID)
	}
	id := st.ID()
	e.waitFrame(fmt.Sprintf("SYN of stream %d", id), func(f *frame.Frame) bool {
		return f.Type == frame.Data && f.StreamID == id && f.Flags.Has(frame.FlagSYN)
	})
	return st
}

// closeWrite half-closes e.st from the session and waits for its FIN.
func (e *stateEnv) closeWrite() {
	e.t.Helper()
	if err := e.st.CloseWrite(); err != nil {
		e.t.Fatalf("CloseWrite: %v", err)
	}
	id := e.id
	e.waitFrame(fmt.Sprintf("FIN of stream %d", id), func(f *frame.Frame) bool {
		return f.Type == frame.Data && f.StreamID == id && f.Flags.Has(frame.FlagFIN)
	})
}

// peerFin half-closes e.st from the fake peer and waits for the session's
// Read to see it.
func (e *stateEnv) peerFin() {
	e.t.Helper()
	e.send(data(e.id, nil, frame.FlagFIN))
	e.wantEOF("after the fake peer's FIN")
}

// wantEOF checks that e.st's Read returns io.EOF.
func (e *stateEnv) wantEOF(what string) {
	e.t.Helper()
	e.st.SetReadDeadline(time.Now().Add(failAfter))
	defer e.st.SetReadDeadline(time.Time{})
	if n, err := e.st.Read(make([]byte, 16)); n != 0 || err != io.EOF {
		e.t.Fatalf("Read %s = %d, %v; want 0, io.EOF", what, n, err)
	}
}

// setupColumn brings the session into state col for the ID the frame
// under test will name (see the file comment), then marks the point from
// which outcomes are observed.
func (e *stateEnv) setupColumn(col string, byPeer bool) {
	e.t.Helper()
	switch col {
	case colIdlePeer, colIdleOwn:
		e.openByPeer(e.peerID)
		e.openBySelf()
		if col == colIdlePeer {
			e.id = e.peerID + 2
		} else {
			e.id = e.ownID + 2
		}
	default:
		if byPeer {
			e.st = e.openByPeer(e.peerID)
		} else {
			e.st = e.openBySelf()
		}
		e.id = e.st.ID()
		switch col {
		case colHalfLocal:
			e.closeWrite()
		case colHalfRemote:
			e.peerFin()
		case colClosed:
			e.closeWrite()
			e.peerFin()
			e.wantStreams(0, "after FIN both ways")
		}
	}
	e.fp.mu.Lock()
	e.mark = len(e.fp.frames)
	e.credit0 = e.fp.credit[0]
	e.fp.mu.Unlock()
}

// sessionError checks that the session ended with a GOAWAY carrying code,
// its last peer-opened ID and a reason, and that CloseChan closed.
func (e *stateEnv) sessionError(code frame.ErrorCode) {
	e.t.Helper()
	g := e.fp.waitGoAway()
	if g.ErrorCode != code {
		e.t.Fatalf("GOAWAY code %v (%q), want %v", g.ErrorCode, g.Debug, code)
	}
	if g.LastStreamID != e.lastPeer {
		e.t.Errorf("GOAWAY last_stream_id %d, want the last peer-opened ID %d", g.LastStreamID, e.lastPeer)
	}
	if len(g.Debug) == 0 {
		e.t.Errorf("GOAWAY %v has no debug text", code)
	}
	waitClosed(e.t, e.s, "after "+code.String())
}

// alive checks that the session still runs: it answers a PING sent after
// the frame under test, so it has handled that frame and queued whatever
// it answers it with.
func (e *stateEnv) alive() {
	e.t.Helper()
	e.pings++
	e.fp.ping(0x5747e000 + e.pings)
	if e.s.IsClosed() {
		e.t.Fatalf("session closed: %v", e.s.Err())
	}
}

// sentOnStream returns the frames the session sent on e.id since the mark.
func (e *stateEnv) sentOnStream() []frame.Frame {
	e.fp.mu.Lock()
	defer e.fp.mu.Unlock()
	var out []frame.Frame
	for _, f := range e.fp.frames[e.mark:] {
		if f.StreamID == e.id && f.Type != frame.Ping && f.Type != frame.GoAway {
			out = append(out, f)
		}
	}
	return out
}

// ignored checks table 2's "ignore": the session stays up and sends
// nothing on the stream.
func (e *stateEnv) ignored() {
	e.t.Helper()
	e.alive()
	if fs := e.sentOnStream(); len(fs) > 0 {
		e.t.Fatalf("the session answered an ignored frame on stream %d with %s", e.id, frameList(fs))
	}
}

// frameList describes frames for failure messages.
func frameList(fs []frame.Frame) string {
	var b strings.Builder
	for i := range fs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fs[i].String())
	}
	return "[" + b.String() + "]"
}

// noReset checks the session sent no RESET on the stream since the mark.
func (e *stateEnv) noReset() {
	e.t.Helper()
	for _, f := range e.sentOnStream() {
		if f.Type == frame.Reset {
			e.t.Fatalf("the session sent %v", &f)
		}
	}
}

// resetSent waits for a RESET with code on the stream, and checks it is the
// only frame the session sent on it.
func (e *stateEnv) resetSent(code frame.ErrorCode) {
	e.t.Helper()
	id, mark := e.id, e.mark
	e.fp.waitFor(fmt.Sprintf("RESET %v on stream %d", code, id), func() bool {
		for _, f := range e.fp.frames[mark:] {
			if f.Type == frame.Reset && f.StreamID == id && f.ErrorCode == code {
				return true
			}
		}
		return false
	})
	e.alive()
	if fs := e.sentOnStream(); len(fs) != 1 {
		e.t.Fatalf("the session sent %s on stream %d, want one RESET %v", frameList(fs), id, code)
	}
}

// credited waits for session WINDOW_UPDATEs (stream 0) granting back at
// least n bytes since the mark.
func (e *stateEnv) credited(n int) {
	e.t.Helper()
	e.fp.waitFor(fmt.Sprintf("a session WINDOW_UPDATE crediting %d discarded bytes", n), func() bool {
		return e.fp.credit[0]-e.credit0 >= uint64(n)
	})
}

// wantStreams waits until the session holds n streams.
func (e *stateEnv) wantStreams(n int, what string) {
	e.t.Helper()
	eventually(e.t, fmt.Sprintf("NumStreams == %d %s", n, what), func() bool { return e.s.NumStreams() == n })
}

// wantRead checks that Read returns exactly p next.
func (e *stateEnv) wantRead(p []byte) {
	e.t.Helper()
	if got := readN(e.t, e.st, len(p)); !bytes.Equal(got, p) {
		e.t.Fatalf("Read returned other bytes than the fake peer sent")
	}
}

// sentData returns the DATA payload bytes the session sent on id.
func (e *stateEnv) sentData(id uint32) int {
	e.fp.mu.Lock()
	defer e.fp.mu.Unlock()
	return e.fp.data[id]
}

// canWrite checks that the session may still send on the stream: a short
// Write returns and its bytes reach the fake peer.
func (e *stateEnv) canWrite() {
	e.t.Helper()
	before := e.sentData(e.id)
	e.st.SetWriteDeadline(time.Now().Add(failAfter))
	if n, err := e.st.Write([]byte("w")); n != 1 || err != nil {
		e.t.Fatalf("Write = %d, %v; want 1, nil", n, err)
	}
	id := e.id
	e.fp.waitFor("the session's byte", func() bool { return e.fp.data[id] >= before+1 })
}

// creditAdded checks table 2's "add credit": a Write blocked on the
// stream's send credit proceeds once the fake peer sends WINDOW_UPDATE.
func (e *stateEnv) creditAdded() {
	e.t.Helper()
	const size = 3 * peerWindow
	id, before := e.id, e.sentData(e.id)
	ch := make(chan result, 1)
	go func() {
		n, err := e.st.Write(make([]byte, size))
		ch <- result{n: n, err: err, write: true, call: "Write"}
	}()
	e.fp.waitFor("the first window of the Write", func() bool { return e.fp.data[id] >= before+peerWindow })
	select {
	case r := <-ch:
		e.t.Fatalf("Write of %d bytes with %d of credit returned %d, %v", size, peerWindow, r.n, r.err)
	default:
	}
	e.send(frame.Frame{Type: frame.WindowUpdate, StreamID: id, WindowDelta: size - peerWindow})
	r := waitResult(e.t, ch, failAfter, "Write blocked on flow control")
	if r.n != size || r.err != nil {
		e.t.Fatalf("Write = %d, %v; want %d, nil", r.n, r.err, size)
	}
	e.fp.waitFor("the rest of the Write", func() bool { return e.fp.data[id] >= before+size })
	e.alive()
	e.noReset()
}

// resetReceived checks a RESET from the fake peer moved the stream to
// closed: Read fails with its code, the stream is gone, and the session
// did not answer with a RESET.
func (e *stateEnv) resetReceived() {
	e.t.Helper()
	e.wantStreams(0, "after the RESET")
	e.st.SetReadDeadline(time.Now().Add(failAfter))
	_, err := e.st.Read(make([]byte, 16))
	wantStreamError(e.t, "Read after the peer's RESET", err, stateAppCode, true)
	e.ignored() // MUST NOT answer a RESET with a RESET
}

// stateCell is one cell of table 2 (or one of its outcomes, for the cell
// with two).
type stateCell struct {
	row, col string
	variant  string        // sub-case of the cell, if any
	cfg      func(*Config) // config edit, if any
	run      func(e *stateEnv)
}

func stateCells() []stateCell {
	small := pattern(7, 1000)         // a payload that is delivered
	discard := pattern(8, discardLen) // a payload that is discarded
	wu := func(id uint32) frame.Frame {
		return frame.Frame{Type: frame.WindowUpdate, StreamID: id, WindowDelta: 4096}
	}
	rst := func(id uint32) frame.Frame {
		return frame.Frame{Type: frame.Reset, StreamID: id, ErrorCode: stateAppCode}
	}
	protocolError := func(f func(e *stateEnv) frame.Frame) func(e *stateEnv) {
		return func(e *stateEnv) {
			e.send(f(e))
			e.sessionError(frame.ProtocolError)
		}
	}
	var cells []stateCell
	add := func(row, col string, run func(e *stateEnv)) {
		cells = append(cells, stateCell{row: row, col: col, run: run})
	}

	// DATA with SYN.
	const rSyn = "DATA+SYN"
	cells = append(cells,
		stateCell{row: rSyn, col: colIdlePeer, variant: "accept", run: func(e *stateEnv) {
			e.send(syn(e.id, small, 0))
			e.st = accept(e.t, e.s)
			if e.st.ID() != e.id {
				e.t.Fatalf("accepted stream %d, want %d", e.st.ID(), e.id)
			}
			e.wantRead(small)
			e.lastPeer = e.id
			e.canWrite() // open: both directions
			e.alive()
			e.noReset()
		}},
		stateCell{row: rSyn, col: colIdlePeer, variant: "accept+FIN", run: func(e *stateEnv) {
			e.send(syn(e.id, small, frame.FlagFIN))
			e.st = accept(e.t, e.s)
			if e.st.ID() != e.id {
				e.t.Fatalf("accepted stream %d, want %d", e.st.ID(), e.id)
			}
			e.wantRead(small)
			e.wantEOF("after SYN+FIN")
			e.canWrite() // half-closed (remote): may still send
			e.alive()
			e.noReset()
		}},
		stateCell{row: rSyn, col: colIdlePeer, variant: "refuse",
			// The fake peer's stream P already fills the limit.
			cfg: func(c *Config) { c.MaxIncomingStreams = 1 },
			run: func(e *stateEnv) {
				e.send(syn(e.id, discard, 0))
				e.resetSent(frame.RefusedStream)
				e.credited(len(discard))
				e.wantStreams(2, "after the refusal") // P and S only
			}},
	)
	for _, col := range []string{colIdleOwn, colOpen, colHalfLocal, colHalfRemote, colClosed} {
		add(rSyn, col, protocolError(func(e *stateEnv) frame.Frame { return syn(e.id, small, 0) }))
	}

	// DATA without SYN (and without FIN).
	const rData = "DATA"
	add(rData, colIdlePeer, protocolError(func(e *stateEnv) frame.Frame { return data(e.id, small, 0) }))
	add(rData, colIdleOwn, protocolError(func(e *stateEnv) frame.Frame { return data(e.id, small, 0) }))
	deliver := func(e *stateEnv) {
		e.send(data(e.id, small, 0))
		e.wantRead(small)
		e.alive()
		e.noReset()
	}
	add(rData, colOpen, deliver)
	add(rData, colHalfLocal, deliver)
	afterFin := func(flags frame.Flags) func(e *stateEnv) {
		return func(e *stateEnv) {
			e.send(data(e.id, discard, flags))
			e.resetSent(frame.StreamClosed)
			e.wantStreams(0, "after RESET STREAM_CLOSED")
			e.credited(len(discard))
		}
	}
	ignoreData := func(flags frame.Flags) func(e *stateEnv) {
		return func(e *stateEnv) {
			e.send(data(e.id, discard, flags))
			e.ignored()
			e.credited(len(discard))
		}
	}
	add(rData, colHalfRemote, afterFin(0))
	add(rData, colClosed, ignoreData(0))

	// DATA with FIN (no SYN): as DATA, and the FIN moves the state on.
	const rFin = "DATA+FIN"
	add(rFin, colIdlePeer, protocolError(func(e *stateEnv) frame.Frame { return data(e.id, small, frame.FlagFIN) }))
	add(rFin, colIdleOwn, protocolError(func(e *stateEnv) frame.Frame { return data(e.id, small, frame.FlagFIN) }))
	add(rFin, colOpen, func(e *stateEnv) { // -> half-closed (remote)
		e.send(data(e.id, small, frame.FlagFIN))
		e.wantRead(small)
		e.wantEOF("after DATA+FIN")
		e.canWrite()
		e.alive()
		e.noReset()
	})
	add(rFin, colHalfLocal, func(e *stateEnv) { // -> closed
		e.send(data(e.id, small, frame.FlagFIN))
		e.wantRead(small)
		e.wantEOF("after DATA+FIN")
		e.wantStreams(0, "after FIN both ways")
		e.alive()
		e.noReset()
	})
	add(rFin, colHalfRemote, afterFin(frame.FlagFIN))
	add(rFin, colClosed, ignoreData(frame.FlagFIN))

	// WINDOW_UPDATE.
	const rWU = "WINDOW_UPDATE"
	add(rWU, colIdlePeer, protocolError(func(e *stateEnv) frame.Frame { return wu(e.id) }))
	add(rWU, colIdleOwn, protocolError(func(e *stateEnv) frame.Frame { return wu(e.id) }))
	add(rWU, colOpen, (*stateEnv).creditAdded)
	add(rWU, colHalfLocal, func(e *stateEnv) { e.send(wu(e.id)); e.ignored() })
	add(rWU, colHalfRemote, (*stateEnv).creditAdded)
	add(rWU, colClosed, func(e *stateEnv) { e.send(wu(e.id)); e.ignored() })

	// RESET.
	const rRst = "RESET"
	add(rRst, colIdlePeer, protocolError(func(e *stateEnv) frame.Frame { return rst(e.id) }))
	add(rRst, colIdleOwn, protocolError(func(e *stateEnv) frame.Frame { return rst(e.id) }))
	for _, col := range []string{colOpen, colHalfLocal, colHalfRemote} {
		add(rRst, col, func(e *stateEnv) { e.send(rst(e.id)); e.resetReceived() })
	}
	add(rRst, colClosed, func(e *stateEnv) { e.send(rst(e.id)); e.ignored() })
	return cells
}

// TestStateTable: see the comment at the top of this file.
func TestStateTable(t *testing.T) {
	for _, c := range stateCells() {
		name := c.row + "/" + c.col
		if c.variant != "" {
			name += "/" + c.variant
		}
		t.Run(name, func(t *testing.T) {
			openers := []bool{true, false}
			if c.col == colIdlePeer || c.col == colIdleOwn {
				openers = []bool{true} // no stream: who opened it is moot
			}
			for _, server := range []bool{true, false} {
				for _, byPeer := range openers {
					sub := "client"
					if server {
						sub = "server"
					}
					if c.col != colIdlePeer && c.col != colIdleOwn {
						if byPeer {
							sub += "/peer-opened"
						} else {
							sub += "/self-opened"
						}
					}
					t.Run(sub, func(t *testing.T) {
						e := newStateEnv(t, server, c.cfg)
						e.setupColumn(c.col, byPeer)
						c.run(e)
					})
				}
			}
		})
	}
}
