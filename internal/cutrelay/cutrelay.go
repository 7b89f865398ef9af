// Package cutrelay is a loopback TCP relay between a client and a server
// that a test can break the way networks break, to show that a protocol
// (braid's resumable sessions, the tunnel that rides on them) survives it.
//
// A [Relay] listens on 127.0.0.1; every connection it accepts is relayed
// to a new TCP connection to a target, which must be a loopback address.
// While it runs, a test can:
//
//   - [Relay.Cut] every relayed connection at once: both ends see a TCP
//     reset (SO_LINGER 0), as from a dropped link or a NAT that forgot the
//     flow;
//   - take the relay [Relay.Down] (each new connection is reset as soon as
//     it is accepted, so the refusal is immediate and the port stays the
//     test's) and [Relay.Up] again;
//   - cut the next connection after exactly n bytes in one direction
//     ([Relay.CutNextAfter]), so a cut can land inside a handshake;
//   - [Relay.Blackhole] a direction of the live connections (the bytes are
//     read, so the sender's writes succeed, and dropped);
//   - [Relay.Abandon] the live connections: the client's side is reset and
//     the server's is left open and silent, as a path that died where the
//     server cannot see it;
//   - count bytes forwarded and swallowed per direction, and connections
//     accepted, live and refused;
//   - read back the first bytes each direction of each connection carried
//     ([Config.Record], [Conn.Recorded]), to look at the wire as an
//     attacker would and replay it.
//
// The relay copies with plain read/write loops (io.Copy could splice
// through pipes the runtime caches, which a test counting file
// descriptors would see). It runs one accepting goroutine and two per
// relayed connection, at most [Config.MaxLive] connections at once;
// [Relay.Close] resets every connection and returns once all of them have
// exited. It depends on nothing but the standard library.
package cutrelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Direction is a direction through the relay.
type Direction int

// The two directions, used to index counters, black holes and records.
const (
	ToServer Direction = iota // client → server: what the client writes
	ToClient                  // server → client: what the server writes
)

// String returns "client→server" or "server→client".
func (d Direction) String() string {
	if d == ToServer {
		return "client→server"
	}
	return "server→client"
}

// Defaults for the zero fields of [Config].
const (
	DefaultMaxLive     = 64
	DefaultDialTimeout = 5 * time.Second
)

// bufSize is the size of each pump's read buffer.
const bufSize = 128 << 10

// Config tunes a [Relay]. The zero value is ready to use.
type Config struct {
	// Record is how many bytes of each direction of each relayed
	// connection the relay keeps for [Conn.Recorded]: the first Record
	// bytes; 0 keeps none. The relay keeps them until it is closed.
	Record int

	// MaxLive bounds the connections relayed at once, abandoned ones
	// included; a connection accepted beyond it is reset at once and
	// counted by [Relay.Refused]. 0 means [DefaultMaxLive].
	MaxLive int

	// DialTimeout bounds each dial to the target; 0 means
	// [DefaultDialTimeout]. When the dial fails the accepted connection
	// is reset, as from a dead path.
	DialTimeout time.Duration
}

// Relay is a loopback TCP relay that can be cut. Create it with [New]
// and stop it with [Relay.Close].
//
// All methods are safe to call concurrently with each other and with the
// traffic the relay carries. A counter read while bytes flow is a
// snapshot: it may miss the chunk being copied.
type Relay struct {
	ln     net.Listener
	target string
	cfg    Config
	ctx    context.Context // cancelled by Close: ends a dial in progress
	cancel context.CancelFunc

	mu      sync.Mutex
	live    map[*pair]struct{}
	orphans map[*pair]struct{} // abandoned: server side still open
	conns   []*Conn            // every connection relayed, in order
	down    bool               // refuse (reset) new connections
	arm     *arm               // cut the next connection after some bytes
	refused int                // connections reset at once (down or full)
	stopped bool

	passed  [2]atomic.Int64 // bytes forwarded, by direction
	dropped [2]atomic.Int64 // bytes swallowed by a black hole, by direction

	closeOnce sync.Once
	closeErr  error // set once, inside closeOnce
	wg        sync.WaitGroup
}

// arm is a pending "cut the next connection after n bytes in dir".
type arm struct {
	dir  Direction
	n    int64
	done chan struct{} // closed when the cut happens
}

// pair is one relayed connection: the accepted client side and the
// dialled server side.
type pair struct {
	conns [2]*net.TCPConn // indexed by the Direction they are written in: [ToServer] is the server side
	info  *Conn

	// Guarded by Relay.mu.
	limit [2]int64 // bytes left before the pair is cut (-1: no limit)
	hole  [2]bool  // swallow instead of forwarding
	arm   *arm
	ended int  // directions finished by an orderly close
	gone  bool // both sides closed
	// The client side was reset but the server side is left open and
	// silent (Abandon): the server is not told.
	abandoned bool
}

// Conn describes one connection the relay has relayed: how many bytes
// each direction carried and, if [Config.Record] is set, the first of
// them. Its methods are safe to call concurrently, also while the
// connection carries traffic.
type Conn struct {
	record  int
	carried [2]atomic.Int64

	mu  sync.Mutex
	rec [2][]byte
}

// take notes that p was taken from the sender in direction dir.
func (c *Conn) take(dir Direction, p []byte) {
	c.carried[dir].Add(int64(len(p)))
	if c.record == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.record - len(c.rec[dir]); room > 0 {
		c.rec[dir] = append(c.rec[dir], p[:min(room, len(p))]...)
	}
}

// Carried returns how many bytes the relay has taken from the sender in
// direction dir on this connection, forwarded or swallowed by a black
// hole (bytes beyond a [Relay.CutNextAfter] limit are not counted).
func (c *Conn) Carried(dir Direction) int64 { return c.carried[dir].Load() }

// Recorded returns a copy of the first [Config.Record] bytes counted by
// [Conn.Carried] in direction dir: exactly what the sender wrote, in
// order. The bytes are recorded before they are forwarded, so once the
// receiver has read them they are here.
func (c *Conn) Recorded(dir Direction) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.rec[dir]...)
}

// New starts a relay listening on 127.0.0.1 on an ephemeral port. Each
// accepted connection is relayed to a new TCP connection to target, which
// must be a loopback address ("127.0.0.1:port", "[::1]:port" or
// "localhost:port"). A nil cfg means the zero Config.
//
// The caller must call Close to release the Relay.
func New(target string, cfg *Config) (*Relay, error) {
	if err := checkLoopback(target); err != nil {
		return nil, err
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Record < 0 || c.MaxLive < 0 || c.DialTimeout < 0 {
		return nil, fmt.Errorf("cutrelay: negative Config field: %+v", c)
	}
	if c.MaxLive == 0 {
		c.MaxLive = DefaultMaxLive
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("cutrelay: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{
		ln:      ln,
		target:  target,
		cfg:     c,
		ctx:     ctx,
		cancel:  cancel,
		live:    make(map[*pair]struct{}),
		orphans: make(map[*pair]struct{}),
	}
	r.wg.Add(1)
	go r.acceptLoop()
	return r, nil
}

// TB is the part of testing.TB that [Start] uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Start is [New] for a test: it fails the test at once if New fails, and
// closes the relay in the test's Cleanup, so every goroutine the relay
// started has ended before cleanups registered earlier run.
func Start(t TB, target string, cfg *Config) *Relay {
	t.Helper()
	r, err := New(target, cfg)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func checkLoopback(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("cutrelay: target %q: %w", target, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("cutrelay: target %q is not a loopback address", target)
	}
	return nil
}

// Addr returns the address clients dial, as "host:port".
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Dial connects to the relay. It has the shape of the dial function
// session.Dial and the tunnel client take.
func (r *Relay) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", r.Addr())
}

// Close stops listening, resets every relayed connection (abandoned ones
// included) and waits until all of the relay's goroutines have exited.
// Counters and [Conn] records stay readable. Close is idempotent: later
// calls return the first call's result.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.cancel()
		err := r.ln.Close()
		r.closeErr = err
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
	})
	return r.closeErr
}

func (r *Relay) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		cc := c.(*net.TCPConn)
		r.mu.Lock()
		refuse := r.down || len(r.live)+len(r.orphans) >= r.cfg.MaxLive
		if refuse {
			r.refused++
		}
		r.mu.Unlock()
		if refuse {
			reset(cc)
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.DialTimeout)
		var d net.Dialer
		sc, err := d.DialContext(ctx, "tcp", r.target)
		cancel()
		if err != nil {
			// The server is gone (or the relay is closing): the client
			// sees a reset, as from a dead path.
			reset(cc)
			continue
		}
		p := &pair{
			conns: [2]*net.TCPConn{ToServer: sc.(*net.TCPConn), ToClient: cc},
			info:  &Conn{record: r.cfg.Record},
			limit: [2]int64{-1, -1},
		}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			reset(cc)
			reset(p.conns[ToServer])
			return
		}
		r.conns = append(r.conns, p.info)
		if a := r.arm; a != nil {
			r.arm = nil
			p.arm = a
			p.limit[a.dir] = a.n
		}
		r.live[p] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pump(p, ToServer)
		go r.pump(p, ToClient)
	}
}

// pump copies one direction of p until it ends or p is cut.
func (r *Relay) pump(p *pair, dir Direction) {
	defer r.wg.Done()
	src, dst := p.conns[1-dir], p.conns[dir]
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			if p.gone {
				r.mu.Unlock()
				return
			}
			fwd, cut, hole := n, false, p.hole[dir]
			if hole {
				r.dropped[dir].Add(int64(n))
				fwd = 0
			} else if p.limit[dir] >= 0 && int64(n) >= p.limit[dir] {
				fwd, cut = int(p.limit[dir]), true
			}
			if p.limit[dir] >= 0 {
				p.limit[dir] -= int64(fwd)
			}
			r.mu.Unlock()
			if hole {
				p.info.take(dir, buf[:n])
			} else {
				p.info.take(dir, buf[:fwd])
			}
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
				if dir == ToClient {
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
func (r *Relay) cutLocked(p *pair) {
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

// Cut resets both ends of every live connection through the relay and
// returns how many there were. Abandoned connections are not live.
func (r *Relay) Cut() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p := range r.live {
		r.cutLocked(p)
		n++
	}
	return n
}

// Abandon resets the client side of every live connection and leaves the
// server side open but silent, as a path that died where the server
// cannot see it (a NAT that forgot the mapping): whatever the server
// writes is swallowed (and counted by [Relay.Dropped]), and it receives
// nothing. The server side is closed only when the server closes it, or
// by Close. It returns how many connections were abandoned.
func (r *Relay) Abandon() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for p := range r.live {
		p.abandoned = true
		p.hole = [2]bool{true, true}
		delete(r.live, p)
		r.orphans[p] = struct{}{}
		reset(p.conns[ToClient])
		n++
	}
	return n
}

// Orphans returns how many abandoned connections the server has not
// closed yet.
func (r *Relay) Orphans() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.orphans)
}

// Down makes the relay refuse new connections until Up: each is reset as
// soon as it is accepted, and counted by [Relay.Refused]. Live
// connections are untouched.
func (r *Relay) Down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
}

// Up makes the relay relay new connections again.
func (r *Relay) Up() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = false
}

// Refused returns how many connections were reset as soon as they were
// accepted, because the relay was down or already carried
// [Config.MaxLive] connections.
func (r *Relay) Refused() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused
}

// Accepted returns how many connections the relay has relayed (accepted
// and connected to the target), live or not.
func (r *Relay) Accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// Live returns how many connections the relay carries now, abandoned
// ones not included.
func (r *Relay) Live() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}

// Conn returns the i-th connection the relay has relayed (0 is the first),
// or nil if it has relayed no more than i connections yet.
func (r *Relay) Conn(i int) *Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < 0 || i >= len(r.conns) {
		return nil
	}
	return r.conns[i]
}

// CutNextAfter arranges for the next connection the relay accepts to be
// cut once exactly n bytes have been relayed on it in direction dir (the
// rest of the read that crosses n is dropped). The returned channel is
// closed when that connection is cut, at n bytes or earlier by
// [Relay.Cut]. A later call replaces an arrangement no connection has
// taken yet (its channel is never closed).
func (r *Relay) CutNextAfter(dir Direction, n int64) <-chan struct{} {
	a := &arm{dir: dir, n: n, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.arm = a
	return a.done
}

// Blackhole makes every live connection swallow what arrives in
// direction dir from now on: the bytes are read (the sender's writes
// succeed), counted by [Relay.Dropped] and dropped. Connections made
// later are not affected.
func (r *Relay) Blackhole(dir Direction) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.live {
		p.hole[dir] = true
	}
}

// Dropped returns how many bytes black holes (and abandoned connections)
// have swallowed in direction dir, over all connections.
func (r *Relay) Dropped(dir Direction) int64 { return r.dropped[dir].Load() }

// Passed returns how many bytes the relay has forwarded in direction
// dir, over all connections.
func (r *Relay) Passed(dir Direction) int64 { return r.passed[dir].Load() }
