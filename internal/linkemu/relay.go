package linkemu

import (
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A relay is one relayed connection: the client connection the Link
// accepted and the server connection it dialed, with one direction each
// way. Each direction has two goroutines, a reader and a writer (the
// scheduler); all four are counted in Link.wg and exit once done is closed,
// or earlier when their direction ends.
type relay struct {
	l              *Link
	client, server *net.TCPConn
	up, down       direction // client→server, server→client

	done    chan struct{} // closed by shutdown
	once    sync.Once
	writers atomic.Int32 // writer goroutines still running
}

func newRelay(l *Link, client, server *net.TCPConn, k uint64) *relay {
	r := &relay{l: l, client: client, server: server, done: make(chan struct{})}
	r.writers.Store(2)
	r.up.init(r, client, server, &l.c2sRead, &l.c2sWrote)
	r.down.init(r, server, client, &l.s2cRead, &l.s2cWrote)
	if len(l.faults) > 0 {
		r.up.f = newDirFaults(l.faults, ClientToServer, l.seed, k, &l.faultsFired)
		r.down.f = newDirFaults(l.faults, ServerToClient, l.seed, k, &l.faultsFired)
	}
	return r
}

// writerDone is called by each writer goroutine as it exits; the relayed
// connection ends when both directions have ended.
func (r *relay) writerDone() {
	if r.writers.Add(-1) == 0 {
		r.shutdown(false, nil)
	}
}

// shutdown ends the relayed connection: it wakes every goroutine and closes
// both sockets, resetting (SO_LINGER 0) both if resetBoth, or reset if not
// nil. Only the first call has an effect.
func (r *relay) shutdown(resetBoth bool, reset *net.TCPConn) {
	r.once.Do(func() {
		close(r.done)
		if resetBoth {
			r.client.SetLinger(0)
			r.server.SetLinger(0)
		} else if reset != nil {
			reset.SetLinger(0)
		}
		r.client.Close()
		r.server.Close()
		r.l.remove(r)
	})
}

// chunkOverhead is what the bound on held bytes charges per chunk besides
// its payload, about the memory a chunk costs, so that a peer writing
// single bytes towards a destination that does not read cannot make the
// relay queue millions of chunks.
const chunkOverhead = 64

type chunkKind uint8

const (
	kindData   chunkKind = iota
	kindEOF              // the source half-closed: CloseWrite the destination
	kindReset            // the source failed: reset the destination, end the relay
	kindCut              // a Cut fault: reset both ends, end the relay
	kindSilent           // the source of a black-holed direction ended: touch nothing
)

// A chunk is what one read from the source produced, or an end marker.
type chunk struct {
	buf    []byte        // payload (kindData only)
	pooled bool          // buf has cap == direction.p.chunk and may be reused
	due    time.Time     // when it may be written to the destination
	pause  time.Duration // a Stall: extra delay before this chunk and all after it
	kind   chunkKind
}

// A direction moves bytes from src to dst through the emulated link. The
// reader goroutine (readLoop) is the only one that reads src and appends to
// the queue; the writer goroutine (writeLoop) is the only one that pops the
// queue and writes dst. They share the fields under mu.
type direction struct {
	r        *relay
	src, dst *net.TCPConn
	p        params
	read     *atomic.Int64 // Link counters
	written  *atomic.Int64
	f        *dirFaults // nil: no faults in this direction

	wake  chan struct{} // reader → writer: the queue became non-empty
	space chan struct{} // writer → reader: in-flight bytes were released

	mu     sync.Mutex
	queue  []chunk // queue[head:] is pending, in order of due (non-decreasing)
	head   int
	held   int64     // bytes read and not yet written, plus chunkOverhead each
	queued int64     // payload bytes in queue[head:]
	busy   time.Time // when the link finishes serializing what it holds
	spare  [][]byte  // pooled buffers for reuse, each of cap p.chunk
}

func (d *direction) init(r *relay, src, dst *net.TCPConn, read, written *atomic.Int64) {
	d.r = r
	d.src, d.dst = src, dst
	d.p = r.l.p
	d.read, d.written = read, written
	d.wake = make(chan struct{}, 1)
	d.space = make(chan struct{}, 1)
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// readLoop reads src in chunks while the link has room, stamps each chunk
// with its departure time and queues it. It ends after queuing an end
// marker, or when the relay shuts down.
func (d *direction) readLoop() {
	defer d.r.l.wg.Done()
	var buf []byte // a pooled buffer, reused across short reads
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		limit := int64(math.MaxInt64) // bytes before the next fault's offset
		if f := d.f; f != nil {
			if f.off == f.cutAt {
				f.fired.Add(1)
				d.push(chunk{kind: kindCut}, time.Now())
				return
			}
			if f.holeAt >= 0 && f.off >= f.holeAt {
				f.fired.Add(1)
				d.blackHole(buf)
				return
			}
			limit = f.limit()
		}
		d.mu.Lock()
		room, next := d.roomLocked(time.Now())
		if room > 0 && buf == nil {
			buf = d.getBufLocked()
		}
		d.mu.Unlock()
		if room <= 0 {
			var expire <-chan time.Time
			if !next.IsZero() {
				timer.Reset(time.Until(next))
				expire = timer.C
			}
			select {
			case <-d.space:
			case <-expire:
			case <-d.r.done:
				return
			}
			continue
		}
		n, err := d.src.Read(buf[:min(int64(len(buf)), room, limit)])
		now := time.Now()
		if n > 0 {
			c := chunk{kind: kindData}
			if d.f != nil {
				d.f.read(buf[:n])
				c.pause = d.f.takePause()
			}
			if n < len(buf)/4 {
				// Don't pin a whole buffer for a few bytes: a chatty
				// peer can have thousands of small chunks in flight.
				c.buf = append([]byte(nil), buf[:n]...)
			} else {
				c.buf, c.pooled = buf[:n], true
				buf = nil
			}
			d.read.Add(int64(n))
			d.push(c, now)
		}
		if err != nil {
			select {
			case <-d.r.done:
				return // our own shutdown closed src
			default:
			}
			c := chunk{kind: kindReset}
			if errors.Is(err, io.EOF) {
				c.kind = kindEOF
			}
			d.push(c, now)
			return
		}
	}
}

// blackHole reads the source and drops what it reads, until the source
// ends or the relay shuts down; the end is not passed on either. The
// writer delivers what was queued before and then exits, leaving the
// destination open.
func (d *direction) blackHole(buf []byte) {
	if buf == nil {
		buf = make([]byte, d.p.chunk)
	}
	for {
		n, err := d.src.Read(buf)
		d.read.Add(int64(n))
		if err != nil {
			select {
			case <-d.r.done:
			default:
				d.push(chunk{kind: kindSilent}, time.Now())
			}
			return
		}
	}
}

// roomLocked returns how many bytes the reader may take from the source
// now. Bytes whose departure time has passed have left the link: they
// only wait for the writer goroutine or for the destination to accept
// them, and do not count against the link's capacity. They are bounded
// separately, by the capacity again, so that a destination that stops
// reading backs the sender up. Counting them against the capacity would
// let every late wakeup of the writer (a loaded machine delays it by tens
// of milliseconds) leave the link idle.
//
// If the link itself is full, next is when its first byte departs (zero
// if nothing is pending), so the reader can wait for that rather than for
// the writer.
func (d *direction) roomLocked(now time.Time) (room int64, next time.Time) {
	var past int64
	i := d.head
	for ; i < len(d.queue) && !d.queue[i].due.After(now); i++ {
		past += int64(len(d.queue[i].buf))
	}
	pending := d.queued - past
	room = min(d.p.capacity-pending, 2*d.p.capacity-d.held)
	if room <= 0 && d.p.capacity-pending <= 0 && i < len(d.queue) {
		next = d.queue[i].due
	}
	return room, next
}

func (d *direction) getBufLocked() []byte {
	if n := len(d.spare); n > 0 {
		b := d.spare[n-1]
		d.spare[n-1] = nil
		d.spare = d.spare[:n-1]
		return b[:cap(b)]
	}
	return make([]byte, d.p.chunk)
}

// push queues c, read from the source at now. A data chunk starts
// serializing when the link is free (after everything queued before it)
// and takes len/Rate; every chunk then propagates for RTT/2. Due times are
// therefore non-decreasing, which the writer relies on.
func (d *direction) push(c chunk, now time.Time) {
	d.mu.Lock()
	start := now
	if d.busy.After(start) {
		start = d.busy
	}
	if c.pause > 0 {
		start = start.Add(c.pause)
		d.busy = start
	}
	if c.kind == kindData && d.p.rate > 0 {
		start = start.Add(time.Duration(int64(len(c.buf)) * int64(time.Second) / d.p.rate))
		d.busy = start
	}
	c.due = start.Add(d.p.delay)
	wasEmpty := d.head == len(d.queue)
	d.queue = append(d.queue, c)
	d.held += int64(len(c.buf)) + chunkOverhead
	d.queued += int64(len(c.buf))
	d.mu.Unlock()
	if wasEmpty {
		// If the queue was not empty the writer is waiting for an earlier
		// chunk and will find this one after it.
		notify(d.wake)
	}
}

// writeLoop sleeps until the first queued chunk is due, then writes every
// chunk that is due by then in one writev, and handles end markers. It ends
// after an end marker, on a write error, or when the relay shuts down.
func (d *direction) writeLoop() {
	defer d.r.l.wg.Done()
	defer d.r.writerDone()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		batch []chunk
		bufs  [][]byte
	)
	for {
		d.mu.Lock()
		if d.head == len(d.queue) {
			d.mu.Unlock()
			select {
			case <-d.wake:
				continue
			case <-d.r.done:
				return
			}
		}
		now := time.Now()
		if wait := d.queue[d.head].due.Sub(now); wait > 0 {
			d.mu.Unlock()
			timer.Reset(wait) // Go ≥ 1.23: no stale value can be received
			select {
			case <-timer.C:
				continue
			case <-d.r.done:
				return
			}
		}
		batch = d.popDueLocked(now, batch[:0])
		d.mu.Unlock()
		end := batch[len(batch)-1].kind // release clears the batch

		bufs = bufs[:0]
		for _, c := range batch {
			if c.kind == kindData {
				bufs = append(bufs, c.buf)
			}
		}
		if len(bufs) > 0 {
			var (
				n   int64
				err error
			)
			if d.f != nil && d.f.maxWrite > 0 {
				n, err = d.writeRechunked(bufs)
			} else {
				nb := net.Buffers(bufs) // WriteTo clobbers bufs; batch keeps the chunks
				n, err = nb.WriteTo(d.dst)
			}
			d.written.Add(n)
			if err != nil {
				// dst is gone: this direction ends. Its queue stays put
				// (the reader stops when it is full); the other direction
				// runs on until its source, dst, reports the end too.
				return
			}
		}
		d.release(batch)
		switch end {
		case kindEOF:
			d.dst.CloseWrite()
			return
		case kindReset:
			d.r.shutdown(false, d.dst)
			return
		case kindCut:
			d.r.shutdown(true, nil)
			return
		case kindSilent:
			return
		}
	}
}

// writeRechunked writes bufs to dst in writes of the sizes a Rechunk
// fault draws.
func (d *direction) writeRechunked(bufs [][]byte) (int64, error) {
	var total int64
	for _, b := range bufs {
		for len(b) > 0 {
			n, err := d.dst.Write(b[:d.f.writeSize(len(b))])
			total += int64(n)
			if err != nil {
				return total, err
			}
			b = b[n:]
		}
	}
	return total, nil
}

// popDueLocked moves the chunks due by now from the queue to batch, stopping
// after an end marker.
func (d *direction) popDueLocked(now time.Time, batch []chunk) []chunk {
	for d.head < len(d.queue) {
		c := d.queue[d.head]
		if c.due.After(now) {
			break
		}
		d.queue[d.head] = chunk{}
		d.head++
		d.queued -= int64(len(c.buf))
		batch = append(batch, c)
		if c.kind != kindData {
			break
		}
	}
	switch {
	case d.head == len(d.queue):
		d.queue, d.head = d.queue[:0], 0
	case d.head >= 64 && d.head > len(d.queue)/2:
		n := copy(d.queue, d.queue[d.head:])
		clear(d.queue[n:])
		d.queue, d.head = d.queue[:n], 0
	}
	return batch
}

// release returns the room and buffers of written chunks and wakes the
// reader.
func (d *direction) release(batch []chunk) {
	var n int64
	d.mu.Lock()
	for i := range batch {
		c := &batch[i]
		n += int64(len(c.buf)) + chunkOverhead
		if c.pooled {
			d.spare = append(d.spare, c.buf[:0])
		}
		*c = chunk{}
	}
	d.held -= n
	d.mu.Unlock()
	notify(d.space)
}
