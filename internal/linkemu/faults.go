package linkemu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// A FaultKind says what a [Fault] does to a direction of a link.
type FaultKind uint8

// The faults. Offsets count the bytes of one direction of one relayed
// connection, from 0, as the relay reads them from the source.
const (
	// Cut ends the connection after At bytes of the direction: those bytes
	// are delivered (after the link's delay, like any other), then both
	// endpoints are reset at once. Each sees ECONNRESET, EPIPE or EOF on
	// its next read or write; bytes of either direction still in the link
	// are dropped. At 0 resets the connection as soon as it is relayed.
	Cut FaultKind = iota + 1

	// BlackHole delivers the first At bytes of the direction and drops
	// every later one, together with the FIN or reset that ends the
	// source, while the connection stays open: the destination sees a
	// peer that has gone silent, and the source's writes keep succeeding
	// (the relay reads and discards them, so they never back up).
	BlackHole

	// Stall pauses the direction for For at byte At, and again at every
	// Every bytes after it when Every > 0: the byte at a stall point and
	// all bytes after it reach the destination For later than they
	// otherwise would. While stalled the link fills up to its capacity
	// and then stops reading the source, as it does for a slow
	// destination.
	Stall

	// Corrupt inverts the bits of Mask in the byte at offset At (all of
	// them if Mask is 0). Nothing else changes: the connection does not
	// notice, as a real one would not if a corruption slipped past TCP's
	// checksum.
	Corrupt

	// Rechunk delivers the direction's bytes unchanged but in writes of
	// random sizes from 1 to MaxWrite bytes (drawn from Config.Seed), one
	// write call each, instead of writes as large as the bytes that are
	// due. MaxWrite 1 delivers one byte per write. It applies from the
	// first byte; At is ignored.
	Rechunk
)

var faultNames = [...]string{"none", "cut", "black hole", "stall", "corrupt", "rechunk"}

// String returns the fault's name, such as "black hole".
func (k FaultKind) String() string {
	if int(k) < len(faultNames) {
		return faultNames[k]
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(k))
}

// A Dir selects the directions of a relayed connection a [Fault] applies
// to. The zero value is Both.
type Dir uint8

// Directions.
const (
	Both           Dir = iota // each direction, counting its own bytes
	ClientToServer            // towards the target (Listen) or the server end (Pipe)
	ServerToClient            // back towards the connecting side
)

var dirNames = [...]string{"both", "client→server", "server→client"}

// String returns "both", "client→server" or "server→client".
func (d Dir) String() string {
	if int(d) < len(dirNames) {
		return dirNames[d]
	}
	return fmt.Sprintf("Dir(%d)", uint8(d))
}

// A Fault is a deterministic fault injected into every connection a Link
// relays, in one direction or both. Which fields matter depends on Kind;
// the others are ignored. Faults combine: a link may stall every 64 KiB,
// re-chunk every write and cut at 10 MB. When several faults of one kind
// end the direction (Cut, BlackHole), the one with the smallest At acts.
type Fault struct {
	Kind FaultKind
	Dir  Dir

	// At is the byte offset in the direction where the fault acts (all
	// kinds but Rechunk).
	At int64

	// Every repeats a Stall every Every bytes after At; 0 stalls once.
	Every int64

	// For is how long a Stall pauses the direction; it must be positive.
	For time.Duration

	// Mask holds the bits Corrupt inverts; 0 means 0xFF.
	Mask byte

	// MaxWrite is Rechunk's largest write; it must be at least 1.
	MaxWrite int
}

func (f Fault) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("linkemu: fault %+v: "+format, append([]any{f}, args...)...)
	}
	if f.Kind < Cut || f.Kind > Rechunk {
		return bad("unknown Kind")
	}
	if f.Dir > ServerToClient {
		return bad("unknown Dir")
	}
	if f.At < 0 {
		return bad("negative At")
	}
	switch f.Kind {
	case Stall:
		if f.For <= 0 {
			return bad("a stall needs a positive For")
		}
		if f.Every < 0 {
			return bad("negative Every")
		}
	case Rechunk:
		if f.MaxWrite < 1 {
			return bad("MaxWrite must be at least 1")
		}
	}
	return nil
}

func checkFaults(fs []Fault) ([]Fault, error) {
	for _, f := range fs {
		if err := f.check(); err != nil {
			return nil, err
		}
	}
	return append([]Fault(nil), fs...), nil
}

// dirFaults is the fault state of one direction of one relayed
// connection. The reader goroutine owns everything but rng, which only
// the writer goroutine uses.
type dirFaults struct {
	off    int64         // bytes read from the source so far
	cutAt  int64         // -1: none
	holeAt int64         // -1: none
	stalls []stallPoint  // next < 0 once a one-off stall has fired
	flips  []flipPoint   // each fires once
	pause  time.Duration // stalls of the chunk just read, for its push
	fired  *atomic.Int64 // Link's fault counter

	maxWrite int        // Rechunk: 0 = off
	rng      *rand.Rand // Rechunk's sizes; writer only
}

type stallPoint struct {
	next, every int64
	pause       time.Duration
}

type flipPoint struct {
	at   int64
	mask byte
}

// newDirFaults returns the faults of fs that apply to direction dir (not
// Both) of the link's connection number conn, or nil if there are none.
func newDirFaults(fs []Fault, dir Dir, seed, conn uint64, fired *atomic.Int64) *dirFaults {
	f := &dirFaults{cutAt: -1, holeAt: -1, fired: fired}
	found := false
	earliest := func(cur, at int64) int64 {
		if cur < 0 || at < cur {
			return at
		}
		return cur
	}
	for _, x := range fs {
		if x.Dir != Both && x.Dir != dir {
			continue
		}
		found = true
		switch x.Kind {
		case Cut:
			f.cutAt = earliest(f.cutAt, x.At)
		case BlackHole:
			f.holeAt = earliest(f.holeAt, x.At)
		case Stall:
			f.stalls = append(f.stalls, stallPoint{next: x.At, every: x.Every, pause: x.For})
		case Corrupt:
			m := x.Mask
			if m == 0 {
				m = 0xFF
			}
			f.flips = append(f.flips, flipPoint{at: x.At, mask: m})
		case Rechunk:
			if f.maxWrite == 0 || x.MaxWrite < f.maxWrite {
				f.maxWrite = x.MaxWrite
			}
		}
	}
	if !found {
		return nil
	}
	if f.maxWrite > 0 {
		f.rng = rand.New(rand.NewPCG(seed, conn<<2|uint64(dir)))
	}
	return f
}

// reachStalls adds the pause of every stall point at the current offset
// to f.pause and moves those points on. A stall acts when the byte at its
// point is read, not when the offset is merely reached: a source that
// ends there is not stalled.
func (f *dirFaults) reachStalls() {
	for i := range f.stalls {
		s := &f.stalls[i]
		if s.next != f.off {
			continue
		}
		f.pause += s.pause
		f.fired.Add(1)
		if s.every > 0 {
			s.next += s.every
		} else {
			s.next = -1
		}
	}
}

// limit returns how many bytes the reader may read before the next offset
// where a fault acts (Cut, BlackHole, Stall), so that a chunk never spans
// one.
func (f *dirFaults) limit() int64 {
	next := int64(math.MaxInt64)
	for _, at := range []int64{f.cutAt, f.holeAt} {
		if at > f.off {
			next = min(next, at)
		}
	}
	for _, s := range f.stalls {
		at := s.next
		if at == f.off && s.every > 0 {
			at += s.every // the stall at f.off acts on this read
		}
		if at > f.off {
			next = min(next, at)
		}
	}
	return next - f.off
}

// read accounts for the bytes just read into b, which start at f.off:
// it corrupts those due and sets the pause for the stalls at f.off (limit
// keeps later stall points out of b).
func (f *dirFaults) read(b []byte) {
	f.reachStalls()
	end := f.off + int64(len(b))
	for _, x := range f.flips {
		if x.at >= f.off && x.at < end {
			b[x.at-f.off] ^= x.mask
			f.fired.Add(1)
		}
	}
	f.off = end
}

// takePause returns the pending stall time and clears it.
func (f *dirFaults) takePause() time.Duration {
	p := f.pause
	f.pause = 0
	return p
}

// writeSize returns the size of the next Rechunk write, at most n.
func (f *dirFaults) writeSize(n int) int {
	k := 1
	if f.maxWrite > 1 {
		k = 1 + f.rng.IntN(f.maxWrite)
	}
	return min(k, n)
}
