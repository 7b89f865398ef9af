package session_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cutRelay is a loopback TCP relay between a client and a server that a
// test can break the way networks break: Cut resets every relayed
// connection at once (both ends see a TCP RST); Down makes it refuse new
// connections (each is reset as soon as it is accepted, so the refusal
// is immediate and the port stays ours) until Up; CutNextAfter cuts the
// next connection after a given number of bytes in one direction (so a
// cut can land inside a handshake); Blackhole makes a live connection
// swallow what it carries (so frames are written to the old connection
// and lost); Abandon resets only the client's side. The test's Cleanup
// stops it; every goroutine it started has ended by then.
type cutRelay struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	live     map[*relayPair]struct{}
	orphans  map[*relayPair]struct{} // abandoned: server side still open
	down     bool                    // refuse (reset) new connections
	arm      *relayArm               // cut the next connection after some bytes
	accepted int                     // connections relayed so far
	refused  int                     // connections reset while down
	stopped  bool

	passed  [2]atomic.Int64 // bytes relayed, by direction
	dropped [2]atomic.Int64 // bytes swallowed by a black hole, by direction

	wg sync.WaitGroup
}

// relayDir is a direction through the relay.
type relayDir int

const (
	toServer relayDir = iota // client → server
	toClient                 // server → client
)

func (d relayDir) String() string {
	if d == toServer {
		return "client→server"
	}
	return "server→client"
}

// relayArm is a pending "cut the next connection after n bytes in dir".
type relayArm struct {
	dir  relayDir
	n    int64
	done chan struct{} // closed when the cut happens
}

// relayPair is one relayed connection: the accepted client side and the
// dialled server side.
type relayPair struct {
	conns [2]*net.TCPConn // indexed by the relayDir they are written in: [toServer] is the server side

	// Guarded by cutRelay.mu.
	limit [2]int64 // bytes left before the pair is cut (-1: no limit)
	hole  [2]bool  // swallow instead of forwarding
	arm   *relayArm
	ended int  // directions finished
	gone  bool // both sides closed
	// The client side was reset but the server side is left open and
	// silent (Abandon): the server is not told.
	abandoned bool
}

// newCutRelay starts a relay on 127.0.0.1 forwarding to target.
func newCutRelay(t testing.TB, target string) *cutRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &cutRelay{ln: ln, target: target, live: make(map[*relayPair]struct{}), orphans: make(map[*relayPair]struct{})}
	r.wg.Add(1)
	go r.acceptLoop()
	t.Cleanup(r.stop)
	return r
}

// Addr is the address clients dial.
func (r *cutRelay) Addr() string { return r.ln.Addr().String() }

// Dial connects to the relay; it is the dial function for session.Dial.
func (r *cutRelay) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", r.Addr())
}

func (r *cutRelay) stop() {
	r.ln.Close()
	r.mu.Lock()
	r.stopped = true
	for p := range r.live {
		r.cutLocked(p)
	}
	for p := range r.orphans {
		r.cutLocked(p)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *cutRelay) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		cc := c.(*net.TCPConn)
		r.mu.Lock()
		down := r.down
		if down {
			r.refused++
		}
		r.mu.Unlock()
		if down {
			reset(cc)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var d net.Dialer
		sc, err := d.DialContext(ctx, "tcp", r.target)
		cancel()
		if err != nil {
			// The server is gone (the test is ending): the client sees
			// a reset, as from a dead path.
			reset(cc)
			continue
		}
		p := &relayPair{conns: [2]*net.TCPConn{toServer: sc.(*net.TCPConn), toClient: cc}, limit: [2]int64{-1, -1}}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			reset(cc)
			reset(p.conns[toServer])
			return
		}
		r.accepted++
		if a := r.arm; a != nil {
			r.arm = nil
			p.arm = a
			p.limit[a.dir] = a.n
		}
		r.live[p] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pump(p, toServer)
		go r.pump(p, toClient)
	}
}

// pump copies one direction of p until it ends or p is cut.
func (r *cutRelay) pump(p *relayPair, dir relayDir) {
	defer r.wg.Done()
	src, dst := p.conns[1-dir], p.conns[dir]
	buf := make([]byte, 128<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			if p.gone {
				r.mu.Unlock()
				return
			}
			fwd, cut := n, false
			if p.hole[dir] {
				r.dropped[dir].Add(int64(n))
				fwd = 0
			} else if p.limit[dir] >= 0 && int64(n) >= p.limit[dir] {
				fwd, cut = int(p.limit[dir]), true
			}
			if p.limit[dir] >= 0 {
				p.limit[dir] -= int64(fwd)
			}
			r.mu.Unlock()
			if fwd > 0 {
				if _, werr := dst.Write(buf[:fwd]); werr != nil {
					err = werr
				} else {
					r.passed[dir].Add(int64(fwd))
				}
			}
			if cut {
				r.mu.Lock()
				r.cutLocked(p)
				r.mu.Unlock()
				return
			}
		}
		if err != nil {
			r.mu.Lock()
			switch {
			case p.gone:
			case p.abandoned:
				// The reset client side ends its pump quietly; the
				// server side's pump ends when the server closes it.
				if dir == toClient {
					r.cutLocked(p)
				}
			case errors.Is(err, io.EOF):
				// An orderly close: pass it on, and let the pair go
				// once both directions are done.
				dst.CloseWrite()
				if p.ended++; p.ended == 2 {
					p.gone = true
					delete(r.live, p)
					p.conns[0].Close()
					p.conns[1].Close()
				}
			default:
				r.cutLocked(p) // a reset: reset the other side too
			}
			r.mu.Unlock()
			return
		}
	}
}

// reset closes c with a TCP RST.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

// cutLocked resets both ends of p. Called with r.mu held.
func (r *cutRelay) cutLocked(p *relayPair) {
	if p.gone {
		return
	}
	p.gone = true
	delete(r.live, p)
	delete(r.orphans, p)
	reset(p.conns[0])
	reset(p.conns[1])
	if p.arm != nil {
		close(p.arm.done)
		p.arm = nil
	}
}

// Cut resets every live connection through the relay and returns how
// many there were.
func (r *cutRelay) Cut() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p := range r.live {
		r.cutLocked(p)
		n++
	}
	return n
}

// Abandon resets the client side of every live connection and leaves
// the server side open but silent, as a path that died where the server
// cannot see it (a NAT that forgot the mapping): whatever the server
// writes is swallowed, and it receives nothing. The server side is closed
// only when the server closes it (or the relay stops). It returns how
// many connections were abandoned.
func (r *cutRelay) Abandon() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p := range r.live {
		p.abandoned = true
		p.hole = [2]bool{true, true}
		delete(r.live, p)
		r.orphans[p] = struct{}{}
		reset(p.conns[toClient])
		n++
	}
	return n
}

// Orphans returns how many abandoned connections the server has not
// closed yet.
func (r *cutRelay) Orphans() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.orphans)
}

// Down makes the relay refuse new connections (each is reset as soon as
// it is accepted) until Up; live connections are untouched.
func (r *cutRelay) Down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
}

// Up makes the relay relay new connections again.
func (r *cutRelay) Up() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = false
}

// Refused returns how many connections were reset while the relay was
// down.
func (r *cutRelay) Refused() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// Accepted returns how many connections the relay has relayed.
func (r *cutRelay) Accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

// Live returns how many connections the relay carries now.
func (r *cutRelay) Live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}

// CutNextAfter arranges for the next connection the relay accepts to be
// cut once exactly n bytes have been relayed on it in direction dir (the
// rest of the read that crosses n is dropped). The returned channel is
// closed when that cut happens.
func (r *cutRelay) CutNextAfter(dir relayDir, n int64) <-chan struct{} {
	a := &relayArm{dir: dir, n: n, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.arm = a
	return a.done
}

// Blackhole makes every live connection swallow what arrives in
// direction dir from now on: the bytes are read (the sender's writes
// succeed) and dropped. Connections made later are not affected.
func (r *cutRelay) Blackhole(dir relayDir) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.live {
		p.hole[dir] = true
	}
}

// Dropped returns how many bytes black holes have swallowed in
// direction dir.
func (r *cutRelay) Dropped(dir relayDir) int64 { return r.dropped[dir].Load() }

// Passed returns how many bytes the relay has forwarded in direction
// dir.
func (r *cutRelay) Passed(dir relayDir) int64 { return r.passed[dir].Load() }
