package linkemu

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and limits used by [Config].
const (
	// DefaultSocketBuffer is the SO_RCVBUF and SO_SNDBUF given to the
	// relay's sockets when Config.SocketBuffer is 0.
	DefaultSocketBuffer = 128 << 10

	// MinQueue is the default Queue when Rate×RTT is smaller than it.
	MinQueue = 256 << 10

	// UnlimitedQueue is the default Queue when Rate is 0 (unlimited): the
	// most a direction has in the link, so the throughput of such a link is
	// bounded by UnlimitedQueue/(RTT/2), about 670 MB/s at RTT = 50 ms.
	UnlimitedQueue = 16 << 20

	maxChunk = 64 << 10 // largest read from a source
	minChunk = 4 << 10  // smallest chunk limit when Rate is low

	maxCapacity = 1 << 34 // sanity bound on bytes held per direction

	acceptRetryBackoff = 10 * time.Millisecond
)

// Config describes an emulated link. The zero Config is a plain relay with
// no delay, no rate limit and a default queue.
//
// A Config is a value; Listen and Pipe copy it.
type Config struct {
	// RTT is the round-trip time: each direction delays bytes by RTT/2.
	RTT time.Duration

	// Rate is the bandwidth of each direction in bytes per second;
	// 0 means unlimited (no serialization delay).
	Rate int64

	// Queue is how many bytes each direction may hold beyond the one-way
	// bandwidth-delay product Rate×RTT/2, like a router's buffer; see the
	// package documentation for how the relay bounds memory. 0 means
	// the default: one full bandwidth-delay product Rate×RTT (the classic
	// router-buffer rule), at least MinQueue; or UnlimitedQueue when Rate
	// is 0. With a rate limit it should hold at least a few milliseconds of
	// Rate, or timer jitter leaves the link idle now and then.
	Queue int

	// SocketBuffer is the kernel send and receive buffer size set on the
	// relay's own sockets, limiting how much undelayed data hides in them.
	// 0 means DefaultSocketBuffer; a negative value leaves the kernel's
	// defaults (and autotuning) alone.
	SocketBuffer int

	// Faults are injected into every connection the link relays; see
	// Fault. Each connection counts its own offsets from 0, so every
	// connection meets the same faults at the same bytes.
	Faults []Fault

	// Seed makes the faults' random choices (Rechunk's write sizes)
	// repeatable: direction d of the link's k-th connection draws from a
	// generator seeded by (Seed, k, d).
	Seed uint64
}

// params is a validated Config in the units the relay uses.
type params struct {
	delay    time.Duration // one-way propagation delay, RTT/2
	rate     int64         // bytes per second, 0 = unlimited
	capacity int64         // bytes held per direction
	chunk    int           // largest read
	sockBuf  int           // 0 = leave the kernel default
}

func (c Config) params() (params, error) {
	if c.RTT < 0 {
		return params{}, fmt.Errorf("linkemu: negative RTT %v", c.RTT)
	}
	if c.Rate < 0 {
		return params{}, fmt.Errorf("linkemu: negative Rate %d", c.Rate)
	}
	if c.Queue < 0 {
		return params{}, fmt.Errorf("linkemu: negative Queue %d", c.Queue)
	}
	p := params{delay: c.RTT / 2, rate: c.Rate, chunk: maxChunk}
	pipe := float64(c.Rate) * p.delay.Seconds() // one-way BDP
	queue := float64(c.Queue)
	if c.Queue == 0 {
		if c.Rate == 0 {
			queue = UnlimitedQueue
		} else {
			queue = math.Max(float64(c.Rate)*c.RTT.Seconds(), MinQueue)
		}
	}
	total := math.Ceil(pipe + queue)
	if total > maxCapacity {
		return params{}, fmt.Errorf("linkemu: link holds %.0f bytes per direction, more than %d", total, int64(maxCapacity))
	}
	p.capacity = int64(total)
	if c.Rate > 0 {
		p.chunk = int(min(max(c.Rate/1000, minChunk), maxChunk))
	}
	switch {
	case c.SocketBuffer == 0:
		p.sockBuf = DefaultSocketBuffer
	case c.SocketBuffer > 0:
		p.sockBuf = c.SocketBuffer
	}
	return p, nil
}

// Stats counts the bytes a Link has relayed. Read counts bytes taken from
// the source, Written bytes delivered to the destination; the difference is
// what is held in the link (in flight) or was dropped when a relayed
// connection ended abnormally.
type Stats struct {
	Conns          int64 // connections accepted
	Faults         int64 // faults that acted: stalls applied, bytes corrupted, cuts, black holes begun
	ClientToServer Flow  // towards the target
	ServerToClient Flow  // from the target back to the connecting side
}

// Flow is the byte count of one direction; see Stats.
type Flow struct {
	Read    int64
	Written int64
}

// A Link is a listening emulated link: every connection accepted on Addr is
// relayed, with the configured delay and rate, to a new connection to the
// target address.
//
// All methods of Link are safe for concurrent use.
type Link struct {
	p      params
	faults []Fault
	seed   uint64
	target string
	ln     *net.TCPListener
	ctx    context.Context // canceled by Close; bounds dials
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of the Link

	mu     sync.Mutex
	closed bool
	relays map[*relay]struct{}
	owned  []io.Closer // closed last by Close (Pipe's listener and endpoints)

	closeOnce sync.Once
	closeErr  error

	conns             atomic.Int64
	faultsFired       atomic.Int64
	c2sRead, c2sWrote atomic.Int64
	s2cRead, s2cWrote atomic.Int64
}

// Listen starts an emulated link listening on 127.0.0.1 on an ephemeral
// port. Each accepted connection is relayed to a new TCP connection to
// target, which must be a loopback address ("127.0.0.1:port",
// "[::1]:port" or "localhost:port"). If dialing target fails the accepted
// connection is closed.
//
// The caller must call Close to release the Link.
func Listen(target string, cfg Config) (*Link, error) {
	p, err := cfg.params()
	if err != nil {
		return nil, err
	}
	faults, err := checkFaults(cfg.Faults)
	if err != nil {
		return nil, err
	}
	if err := checkLoopback(target); err != nil {
		return nil, err
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("linkemu: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		p:      p,
		faults: faults,
		seed:   cfg.Seed,
		target: target,
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		relays: make(map[*relay]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func checkLoopback(target string) error {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return fmt.Errorf("linkemu: target %q: %w", target, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("linkemu: target %q is not a loopback address", target)
	}
	return nil
}

// Addr returns the address clients dial to cross the link, as "host:port".
func (l *Link) Addr() string { return l.ln.Addr().String() }

// Stats returns the link's counters, summed over all connections it has
// relayed. The counters are read one by one without a common lock, so a
// snapshot taken during a transfer may be a few chunks inconsistent.
func (l *Link) Stats() Stats {
	return Stats{
		Conns:          l.conns.Load(),
		Faults:         l.faultsFired.Load(),
		ClientToServer: Flow{Read: l.c2sRead.Load(), Written: l.c2sWrote.Load()},
		ServerToClient: Flow{Read: l.s2cRead.Load(), Written: l.s2cWrote.Load()},
	}
}

// Close stops listening, resets every relayed connection (both ends see
// ECONNRESET or a closed connection, and data still in the link is
// dropped), closes the connections made by PipeLink, and waits until all of
// the Link's goroutines have exited. Close is idempotent: later calls
// return the first call's result.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		rs := make([]*relay, 0, len(l.relays))
		for r := range l.relays {
			rs = append(rs, r)
		}
		owned := l.owned
		l.owned = nil
		l.mu.Unlock()

		l.cancel()
		l.closeErr = l.ln.Close()
		for _, r := range rs {
			r.shutdown(true, nil)
		}
		l.wg.Wait()
		for _, c := range owned {
			c.Close()
		}
	})
	return l.closeErr
}

// own registers closers for Close; it closes them at once if the link is
// already closed.
func (l *Link) own(cs ...io.Closer) {
	l.mu.Lock()
	if !l.closed {
		l.owned = append(l.owned, cs...)
		cs = nil
	}
	l.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

func (l *Link) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			// A transient failure such as EMFILE: back off, don't spin.
			t := time.NewTimer(acceptRetryBackoff)
			select {
			case <-t.C:
			case <-l.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		k := l.conns.Add(1) - 1
		l.wg.Add(1)
		go l.connect(c, uint64(k))
	}
}

// connect dials the target for the accepted client connection c, the
// link's k-th (from 0), and starts relaying.
func (l *Link) connect(c *net.TCPConn, k uint64) {
	defer l.wg.Done()
	d := net.Dialer{Timeout: 10 * time.Second}
	sc, err := d.DialContext(l.ctx, "tcp", l.target)
	if err != nil {
		c.Close()
		return
	}
	s := sc.(*net.TCPConn)
	if n := l.p.sockBuf; n > 0 {
		for _, tc := range []*net.TCPConn{c, s} {
			// Best effort: a failure leaves the kernel default, which is
			// only less faithful, not wrong.
			_ = tc.SetReadBuffer(n)
			_ = tc.SetWriteBuffer(n)
		}
	}
	r := newRelay(l, c, s, k)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	l.relays[r] = struct{}{}
	l.wg.Add(4)
	l.mu.Unlock()
	go r.up.readLoop()
	go r.up.writeLoop()
	go r.down.readLoop()
	go r.down.writeLoop()
}

func (l *Link) remove(r *relay) {
	l.mu.Lock()
	delete(l.relays, r)
	l.mu.Unlock()
}

// PipeLink returns a connected pair of loopback TCP connections whose bytes
// cross a new emulated link: client is connected to the link, and server is
// the connection the link made to a listener that PipeLink owns and has
// already closed. The Link's Stats count the pair's bytes (client is the
// "client" side).
//
// Closing the Link closes client and server too. The two connections follow
// net.Conn's concurrency rules; they keep the kernel's default socket
// buffers.
func PipeLink(cfg Config) (client, server net.Conn, l *Link, err error) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("linkemu: %w", err)
	}
	defer ln.Close()
	l, err = Listen(ln.Addr().String(), cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := net.DialTCP("tcp", nil, l.ln.Addr().(*net.TCPAddr))
	if err != nil {
		l.Close()
		return nil, nil, nil, fmt.Errorf("linkemu: %w", err)
	}
	l.own(c)
	if err := ln.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		l.Close()
		return nil, nil, nil, fmt.Errorf("linkemu: %w", err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		l.Close()
		return nil, nil, nil, fmt.Errorf("linkemu: link did not connect: %w", err)
	}
	l.own(s)
	return c, s, l, nil
}

// Pipe is PipeLink for callers that need no Stats: cleanup closes the
// link and both connections, and may be called more than once.
func Pipe(cfg Config) (client, server net.Conn, cleanup func(), err error) {
	c, s, l, err := PipeLink(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, s, func() { l.Close() }, nil
}
