package mux

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/braidmux/braid/frame"
)

// ops reads a script of operations from bytes; past the end it reads
// zeros, so every input is a valid script.
type ops struct {
	b []byte
	i int
}

func (o *ops) more() bool { return o.i < len(o.b) }

func (o *ops) byte() byte {
	if o.i >= len(o.b) {
		o.i++
		return 0
	}
	c := o.b[o.i]
	o.i++
	return c
}

// intn returns a number in [0, n) from two script bytes.
func (o *ops) intn(n int) int {
	v := int(o.byte())<<8 | int(o.byte())
	return v % n
}

// mstream is the model of one stream: the segment handed to Enqueue and
// how much of it has been seen on the wire.
type mstream struct {
	st      *Stream[*mstream]
	queued  bool
	seg     []byte
	fin     bool
	framed  bool // seg is a prepaid frame (EnqueueFrame)
	emitted int
	credit  int64

	enqueued, sent, dropped int
	fins                    int // FIN frames seen
	finsWanted              int // Enqueue calls with fin, not removed
}

func (m *mstream) pending() int { return len(m.seg) - m.emitted }

// runScript drives a Scheduler with the operations in script and checks
// it against a model after every step.
func runScript(t testing.TB, script []byte) {
	o := &ops{b: script}
	s := NewScheduler[*mstream](1 + o.intn(3000))
	nstreams := 1 + o.intn(8)
	ms := make([]*mstream, nstreams)
	byID := map[uint32]*mstream{}
	for i := range ms {
		ms[i] = &mstream{}
		ms[i].st = &Stream[*mstream]{ID: uint32(2*i + 1), Owner: ms[i]}
		byID[ms[i].st.ID] = ms[i]
	}
	var ctl []uint64 // opaque values of queued control PINGs
	var nextOpaque uint64
	var b Batch[*mstream]

	fill := func(maxPayload int, session int64, maxBatch int) {
		for _, m := range ms { // a prepaid frame is never cut
			if m.framed {
				maxPayload = max(maxPayload, len(m.seg))
			}
		}
		used := s.Fill(&b, maxPayload, session, maxBatch)
		ws := decodeBatch(t, &b)
		if len(ws) < len(ctl) {
			t.Fatalf("%d frames, %d control frames queued", len(ws), len(ctl))
		}
		for i, op := range ctl {
			if ws[i].Type != frame.Ping || ws[i].Opaque != op {
				t.Fatalf("frame %d = %v opaque %d, want PING %d", i, ws[i].Type, ws[i].Opaque, op)
			}
		}
		ws = ws[len(ctl):]
		ctl = ctl[:0]
		checkSent(t, ws, b.Sent())
		var sum int64
		for i, w := range ws {
			m := byID[w.StreamID]
			n := len(w.Payload)
			fin := w.Flags.Has(frame.FlagFIN)
			switch {
			case m == nil:
				t.Fatalf("DATA frame for unknown stream %d", w.StreamID)
			case b.Sent()[i].Stream.Owner != m:
				t.Fatalf("stream %d: Sent entry's Owner is not the stream's", w.StreamID)
			case b.Sent()[i].Prepaid != m.framed:
				t.Fatalf("stream %d: Sent.Prepaid %v, model %v", w.StreamID, b.Sent()[i].Prepaid, m.framed)
			case m.framed:
				if w.Flags != frame.FlagCompressed || !bytes.Equal(w.Payload, m.seg) {
					t.Fatalf("stream %d: prepaid frame flags %v, %d bytes, want %d", w.StreamID, w.Flags, n, len(m.seg))
				}
				m.sent += n
				m.queued, m.seg, m.framed = false, nil, false
				continue
			case !m.queued:
				t.Fatalf("stream %d: frame with nothing enqueued", w.StreamID)
			case n == 0 && !fin:
				t.Fatalf("stream %d: empty frame without FIN", w.StreamID)
			case n > maxPayload:
				t.Fatalf("stream %d: %d-byte frame, max payload %d", w.StreamID, n, maxPayload)
			case n > 0 && int64(n) > m.credit:
				t.Fatalf("stream %d: %d-byte frame with %d credit", w.StreamID, n, m.credit)
			case !bytes.Equal(w.Payload, m.seg[m.emitted:min(m.emitted+n, len(m.seg))]):
				t.Fatalf("stream %d: payload at offset %d is not the next enqueued bytes", w.StreamID, m.emitted)
			}
			m.emitted += n
			m.credit -= int64(n)
			m.sent += n
			sum += int64(n)
			done := m.emitted == len(m.seg)
			switch {
			case fin && (!m.fin || !done):
				t.Fatalf("stream %d: FIN with %d bytes still pending (fin requested %v)", w.StreamID, m.pending(), m.fin)
			case done && m.fin && !fin:
				t.Fatalf("stream %d: last byte sent without the requested FIN", w.StreamID)
			}
			if fin {
				m.fins++
			}
			if done {
				m.queued, m.seg, m.fin, m.emitted = false, nil, false, 0
			}
		}
		if sum != used {
			t.Fatalf("Fill returned %d, DATA payload %d", used, sum)
		}
		if used > max(session, 0) {
			t.Fatalf("used %d session credit of %d", used, session)
		}
		// Liveness: if the batch limit did not stop Fill, nothing
		// sendable is left behind.
		if b.Size() < maxBatch {
			for _, m := range ms {
				if m.queued && len(m.seg) == 0 {
					t.Fatalf("stream %d: empty FIN left behind", m.st.ID)
				}
				if m.framed {
					t.Fatalf("stream %d: prepaid frame left behind", m.st.ID)
				}
				if session-used > 0 && m.queued && !m.framed && m.pending() > 0 && m.credit > 0 {
					t.Fatalf("stream %d: %d bytes and %d credit left behind with %d session credit",
						m.st.ID, m.pending(), m.credit, session-used)
				}
			}
		}
		b.Reset()
	}

	check := func() {
		sendable, finOnly := false, false
		for _, m := range ms {
			st := m.st
			if st.Credit() < 0 || st.Credit() > MaxCredit {
				t.Fatalf("stream %d: credit %d out of [0, MaxCredit]", st.ID, st.Credit())
			}
			if st.Pending() != m.pending() || st.Credit() != m.credit || st.Queued() != m.queued {
				t.Fatalf("stream %d: Pending %d Credit %d Queued %v, model %d %d %v",
					st.ID, st.Pending(), st.Credit(), st.Queued(), m.pending(), m.credit, m.queued)
			}
			if m.queued && (len(m.seg) == 0 || m.framed) {
				finOnly = true // needs no credit
			}
			if !m.framed && m.pending() > 0 && m.credit > 0 {
				sendable = true
			}
		}
		for _, sc := range []int64{0, 1} {
			want := len(ctl) > 0 || finOnly || (sc > 0 && sendable)
			if got := s.HasWork(sc); got != want {
				t.Fatalf("HasWork(%d) = %v, model says %v", sc, got, want)
			}
		}
	}

	for o.more() {
		m := ms[o.intn(len(ms))]
		switch op := o.byte() % 9; op {
		case 0, 1: // enqueue
			n := o.intn(3000)
			if o.byte()%4 == 0 {
				n = 0
			}
			fin := o.byte()%2 == 0
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(m.enqueued + i)
			}
			if m.queued {
				func() {
					defer func() {
						if recover() == nil {
							t.Fatalf("stream %d: Enqueue on a queued stream did not panic", m.st.ID)
						}
					}()
					s.Enqueue(m.st, p, fin)
				}()
				break
			}
			s.Enqueue(m.st, p, fin)
			if n > 0 || fin {
				m.queued, m.seg, m.fin, m.emitted = true, p, fin, 0
				m.enqueued += n
				if fin {
					m.finsWanted++
				}
			}
		case 2: // credit: grant (sometimes near or past MaxCredit), take, give back
			switch o.byte() % 4 {
			case 0, 1:
				d := uint32(o.intn(4000))
				if o.byte()%8 == 0 {
					d = uint32(MaxCredit - m.credit + int64(o.intn(3)) - 1)
				}
				err := s.AddCredit(m.st, d)
				if over := m.credit+int64(d) > MaxCredit; over != errors.Is(err, ErrCreditOverflow) || (!over && err != nil) {
					t.Fatalf("stream %d: AddCredit(%d) with credit %d = %v", m.st.ID, d, m.credit, err)
				}
				if err == nil {
					m.credit += int64(d)
				}
			case 2:
				n := o.intn(4000) - 100
				ok := s.TakeCredit(m.st, n)
				if want := n >= 0 && int64(n) <= m.credit; ok != want {
					t.Fatalf("stream %d: TakeCredit(%d) with credit %d = %v", m.st.ID, n, m.credit, ok)
				}
				if ok {
					m.credit -= int64(n)
				}
			case 3:
				n := o.intn(4000) - 100
				if o.byte()%8 == 0 {
					n = MaxCredit
				}
				s.ReturnCredit(m.st, n)
				m.credit = min(m.credit+int64(max(n, 0)), MaxCredit)
			}
		case 3: // remove
			want := m.pending()
			if got := s.Remove(m.st); got != want {
				t.Fatalf("stream %d: Remove = %d, model %d pending", m.st.ID, got, want)
			}
			m.dropped += want
			if m.fin {
				m.finsWanted--
			}
			if m.framed && o.byte()%2 == 0 { // give back its prepaid credit
				s.ReturnCredit(m.st, want)
				m.credit = min(m.credit+int64(want), MaxCredit)
			}
			m.queued, m.seg, m.fin, m.framed, m.emitted = false, nil, false, false, 0
		case 4: // control
			if o.byte()%2 == 0 {
				s.PushControl(&frame.Frame{Type: frame.Ping, Opaque: nextOpaque})
			} else {
				s.PushControlBytes((&frame.Frame{Type: frame.Ping, Opaque: nextOpaque}).Append(nil))
			}
			ctl = append(ctl, nextOpaque)
			nextOpaque++
		case 5, 6: // fill
			fill(1+o.intn(2000), int64(o.intn(8000))-100, o.intn(20000))
		case 7: // weight
			m.st.Weight = uint32(o.byte() % 5)
		case 8: // prepaid frame, paid with TakeCredit
			n := 1 + o.intn(2000)
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(m.enqueued + i)
			}
			if m.queued || !s.TakeCredit(m.st, n) {
				if !m.queued && int64(n) <= m.credit {
					t.Fatalf("stream %d: TakeCredit(%d) with credit %d failed", m.st.ID, n, m.credit)
				}
				break
			}
			m.credit -= int64(n)
			s.EnqueueFrame(m.st, p, frame.FlagCompressed)
			m.queued, m.seg, m.framed, m.emitted = true, p, true, 0
			m.enqueued += n
		}
		check()
	}

	// Drain: with credit for everyone, everything enqueued goes out.
	for _, m := range ms {
		d := MaxCredit - m.credit
		if err := s.AddCredit(m.st, uint32(d)); err != nil {
			t.Fatalf("stream %d: AddCredit(%d) with credit %d: %v", m.st.ID, d, m.credit, err)
		}
		m.credit += d
	}
	for i := 0; s.HasWork(1 << 40); i++ {
		if i > 1000 {
			t.Fatal("scheduler does not drain")
		}
		fill(1+o.intn(2000), 1<<40, 1<<20)
	}
	check()
	for _, m := range ms {
		if m.queued || m.enqueued != m.sent+m.dropped || m.fins != m.finsWanted {
			t.Fatalf("stream %d: queued %v, enqueued %d, sent %d, dropped %d, FINs %d of %d",
				m.st.ID, m.queued, m.enqueued, m.sent, m.dropped, m.fins, m.finsWanted)
		}
	}
}

func TestProperty(t *testing.T) {
	seeds := 500
	if testing.Short() {
		seeds = 50
	}
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 0x6d7578))
		script := make([]byte, 500+r.IntN(4000))
		for i := range script {
			script[i] = byte(r.Uint32())
		}
		runScript(t, script)
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
}

func FuzzScheduler(f *testing.F) {
	for seed := range 8 {
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		script := make([]byte, 64<<seed)
		for i := range script {
			script[i] = byte(r.Uint32())
		}
		f.Add(script)
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		runScript(t, script)
	})
}
