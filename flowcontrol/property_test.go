package flowcontrol

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// pstream is one stream in the property test: a sender's SendWindow, the
// receiver's RecvWindow, and the two directions of the link between them.
type pstream struct {
	send         SendWindow
	recv         RecvWindow
	initial, max uint32
	rtt          time.Duration
	data         []int    // payload chunks in flight to the receiver, FIFO
	updates      []uint32 // WINDOW_UPDATE deltas in flight to the sender, FIFO
	dataBytes    uint64   // sum of data
	updateBytes  uint64   // sum of updates
	shrunkAt     uint64   // Granted() at the last Shrink: it may stay above Consumed()+Window() until consumed
	closed       bool
}

// pworld is several streams sharing one Budget, with a clock.
type pworld struct {
	t       *testing.T
	rng     *rand.Rand
	budget  Budget
	streams []*pstream
	now     time.Time

	// Coverage counters: the test fails if an interesting case never ran.
	grows, capped, refused, violations, releases, shrinks int
}

func (w *pworld) newStream() *pstream {
	initial := uint32(1 + w.rng.IntN(4096))
	if w.rng.IntN(8) == 0 {
		initial = uint32(1 + w.rng.IntN(4)) // tiny windows
	}
	max := initial << w.rng.IntN(6)
	if w.rng.IntN(2) == 0 {
		max = initial + uint32(w.rng.IntN(int(initial)*32)) // not a power-of-two multiple
	}
	rtts := []time.Duration{0, time.Microsecond, time.Millisecond, 50 * time.Millisecond, time.Second}
	return &pstream{
		send:    NewSendWindow(initial),
		recv:    NewRecvWindow(initial, max, w.now),
		initial: initial,
		max:     max,
		rtt:     rtts[w.rng.IntN(len(rtts))],
	}
}

// step performs one random operation on a random stream.
func (w *pworld) step() {
	rng := w.rng
	s := w.streams[rng.IntN(len(w.streams))]
	switch op := rng.IntN(100); {
	case op < 25: // the sender sends some or all of its credit
		avail := int(s.send.Available())
		n := avail
		if rng.IntN(3) > 0 {
			n = rng.IntN(avail + 1)
		}
		s.send.Take(n)
		s.data = append(s.data, n)
		s.dataBytes += uint64(n)
	case op < 45: // a data chunk arrives
		if len(s.data) == 0 {
			return
		}
		n := s.data[0]
		s.data = s.data[1:]
		s.dataBytes -= uint64(n)
		if err := s.recv.Receive(n); err != nil {
			w.t.Fatalf("in-credit Receive(%d) failed: %v (sender sent beyond receiver credit)", n, err)
		}
	case op < 50: // a misbehaving peer sends beyond credit
		before := s.recv
		n := int(s.recv.Credit()) + 1 + rng.IntN(1000)
		err := s.recv.Receive(n)
		if !errors.Is(err, ErrFlowControl) {
			w.t.Fatalf("Receive(%d) with credit %d: %v, want ErrFlowControl", n, before.Credit(), err)
		}
		if s.recv != before {
			w.t.Fatal("failed Receive changed the window")
		}
		w.violations++
	case op < 75: // the application reads
		n := s.recv.Buffered()
		if rng.IntN(2) == 0 {
			n = rng.IntN(n + 1)
		}
		w.now = w.now.Add(time.Duration(rng.ExpFloat64() * float64(time.Millisecond)))
		b := &w.budget
		if rng.IntN(10) == 0 {
			b = nil
		}
		oldWindow, oldUsed := s.recv.Window(), w.budget.Used()
		due := s.recv.UpdateDue(n, s.rtt)
		delta := s.recv.Consume(n, w.now, s.rtt, b)
		if due != (delta > 0) {
			w.t.Fatalf("UpdateDue(%d) = %v, but Consume returned delta %d", n, due, delta)
		}
		switch {
		case s.recv.Window() > oldWindow:
			w.grows++
			if s.recv.Window() == s.max && s.max < 2*oldWindow {
				w.capped++
			}
			if got := uint32(w.budget.Used() - oldUsed); got != s.recv.Window()-oldWindow {
				w.t.Fatalf("window grew by %d, budget by %d", s.recv.Window()-oldWindow, got)
			}
		case delta > 0 && w.budget.Available() < int64(min(oldWindow, s.max-oldWindow)):
			w.refused++ // an update where the budget could not have paid
		}
		if delta > 0 {
			s.updates = append(s.updates, delta)
			s.updateBytes += uint64(delta)
		}
	case op < 90: // a WINDOW_UPDATE arrives
		if len(s.updates) == 0 {
			return
		}
		d := s.updates[0]
		s.updates = s.updates[1:]
		s.updateBytes -= uint64(d)
		if err := s.send.Add(d); err != nil {
			w.t.Fatalf("honest Add(%d) with credit %d: %v", d, s.send.Available(), err)
		}
	case op < 91: // the receiver shrinks the window (a session holding the stream back)
		used, held := w.budget.Used(), int64(s.recv.Reserved())
		granted := s.recv.Granted()
		s.recv.Shrink(w.now, &w.budget)
		switch {
		case s.recv.Granted() != granted:
			w.t.Fatalf("Shrink changed Granted from %d to %d", granted, s.recv.Granted())
		case w.budget.Used() != used-held:
			w.t.Fatalf("Shrink released %d, want %d", used-w.budget.Used(), held)
		case !s.closed && s.recv.Window() != s.initial:
			w.t.Fatalf("window %d after Shrink, want the initial %d", s.recv.Window(), s.initial)
		}
		if held > 0 {
			w.shrinks++
			s.shrunkAt = granted
		}
	case op < 93: // the stream closes (maybe twice); the slot gets a new stream later
		used, held := w.budget.Used(), int64(s.recv.Reserved())
		s.recv.Close(&w.budget)
		s.recv.Close(&w.budget)
		if w.budget.Used() != used-held || (s.closed && held != 0) {
			w.t.Fatalf("Close released %d, want %d once", used-w.budget.Used(), held)
		}
		if held > 0 {
			w.releases++
		}
		s.closed = true
	case op < 96: // a closed stream is replaced by a new one
		for i, x := range w.streams {
			if x.closed {
				w.streams[i] = w.newStream()
				break
			}
		}
	default: // time passes
		w.now = w.now.Add(time.Duration(rng.IntN(int(100 * time.Millisecond))))
	}
}

// check asserts every invariant on every stream and on the budget.
func (w *pworld) check() {
	var held int64
	for i, s := range w.streams {
		r := &s.recv
		switch {
		case r.Credit() < 0:
			w.t.Fatalf("stream %d: negative credit %d", i, r.Credit())
		case !(r.Consumed() <= r.Received() && r.Received() <= r.Granted() && r.Granted() <= max(r.Consumed()+uint64(r.Window()), s.shrunkAt)):
			w.t.Fatalf("stream %d: offsets out of order: consumed %d received %d granted %d window %d",
				i, r.Consumed(), r.Received(), r.Granted(), r.Window())
		case r.Received()-r.Consumed() != uint64(r.Buffered()):
			w.t.Fatalf("stream %d: Received-Consumed %d != Buffered %d", i, r.Received()-r.Consumed(), r.Buffered())
		case uint64(r.Credit()) != r.Granted()-r.Received():
			w.t.Fatalf("stream %d: Credit %d != Granted-Received", i, r.Credit())
		case r.Window() < s.initial || r.Window() > s.max:
			w.t.Fatalf("stream %d: window %d outside [%d, %d]", i, r.Window(), s.initial, s.max)
		case !s.closed && r.Window() != s.initial+r.Reserved():
			w.t.Fatalf("stream %d: window %d != initial %d + reserved %d", i, r.Window(), s.initial, r.Reserved())
		case s.closed && r.Reserved() != 0:
			w.t.Fatalf("stream %d: closed but holds %d", i, r.Reserved())
		// Every byte is accounted for: sent = received + in flight.
		case s.send.Sent() != r.Received()+s.dataBytes:
			w.t.Fatalf("stream %d: sent %d != received %d + in flight %d", i, s.send.Sent(), r.Received(), s.dataBytes)
		// Every grant is accounted for: granted = sender's limit + updates in flight.
		case s.send.Limit()+s.updateBytes != r.Granted():
			w.t.Fatalf("stream %d: sender limit %d + in flight %d != granted %d", i, s.send.Limit(), s.updateBytes, r.Granted())
		// The sender can never send beyond what the receiver will accept.
		case s.send.Limit() > r.Granted():
			w.t.Fatalf("stream %d: sender may send to %d, receiver granted %d", i, s.send.Limit(), r.Granted())
		case s.send.Available() < 0 || s.send.Available() > MaxWindow:
			w.t.Fatalf("stream %d: sender credit %d", i, s.send.Available())
		}
		held += int64(r.Reserved())
	}
	if w.budget.Used() > w.budget.Limit() || w.budget.Used() != held {
		w.t.Fatalf("budget Used %d, Limit %d, held by open windows %d", w.budget.Used(), w.budget.Limit(), held)
	}
}

func TestProperties(t *testing.T) {
	const seeds, ops = 40, 5000
	var total pworld
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 0xb4a1d))
		w := &pworld{t: t, rng: rng, now: t0, budget: NewBudget(int64(rng.IntN(64 << 10)))}
		for range 2 + rng.IntN(10) {
			w.streams = append(w.streams, w.newStream())
		}
		for range ops {
			w.step()
			w.check()
		}
		// Closing everything returns the budget to empty.
		for _, s := range w.streams {
			s.recv.Close(&w.budget)
		}
		if w.budget.Used() != 0 {
			t.Fatalf("seed %d: budget Used %d after closing all streams", seed, w.budget.Used())
		}
		total.grows += w.grows
		total.capped += w.capped
		total.refused += w.refused
		total.violations += w.violations
		total.releases += w.releases
		total.shrinks += w.shrinks
	}
	t.Logf("%d seeds x %d ops: %d growths (%d capped by max), %d updates without budget, %d violations rejected, %d closes released budget, %d shrinks",
		seeds, ops, total.grows, total.capped, total.refused, total.violations, total.releases, total.shrinks)
	if total.grows == 0 || total.capped == 0 || total.refused == 0 || total.violations == 0 || total.releases == 0 || total.shrinks == 0 {
		t.Fatal("a case was never exercised; adjust the generator")
	}
}
