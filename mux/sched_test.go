package mux

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"

	"github.com/braidmux/braid/frame"
)

type setup struct {
	id     uint32
	weight uint32
	credit uint32
	n      int // payload bytes to enqueue
	fin    bool
}

type want struct {
	id  uint32
	n   int
	fin bool
}

func TestFill(t *testing.T) {
	const big = 1 << 40
	tests := []struct {
		name       string
		quantum    int
		streams    []setup
		maxPayload int
		session    int64
		maxBatch   int
		want       []want
	}{
		{
			name:       "cut to max payload",
			streams:    []setup{{id: 1, credit: 1000, n: 250}},
			maxPayload: 100, session: big, maxBatch: big,
			want: []want{{1, 100, false}, {1, 100, false}, {1, 50, false}},
		},
		{
			name:       "FIN rides on the last data frame",
			streams:    []setup{{id: 1, credit: 1000, n: 250, fin: true}},
			maxPayload: 100, session: big, maxBatch: big,
			want: []want{{1, 100, false}, {1, 100, false}, {1, 50, true}},
		},
		{
			name:       "cut to stream credit",
			streams:    []setup{{id: 1, credit: 70, n: 250, fin: true}, {id: 3, credit: 1000, n: 20}},
			maxPayload: 100, session: big, maxBatch: big,
			want: []want{{1, 70, false}, {3, 20, false}},
		},
		{
			name:       "cut to session credit",
			streams:    []setup{{id: 1, credit: 1000, n: 250, fin: true}},
			maxPayload: 100, session: 130, maxBatch: big,
			want: []want{{1, 100, false}, {1, 30, false}},
		},
		{
			name:       "session credit shared across streams",
			quantum:    100,
			streams:    []setup{{id: 1, credit: 1000, n: 250}, {id: 3, credit: 1000, n: 250}},
			maxPayload: 100, session: 150, maxBatch: big,
			want: []want{{1, 100, false}, {3, 50, false}},
		},
		{
			name:       "empty FIN needs no credit",
			streams:    []setup{{id: 1, credit: 0, n: 0, fin: true}},
			maxPayload: 100, session: 0, maxBatch: big,
			want: []want{{1, 0, true}},
		},
		{
			name:       "zero session credit sends only empty FINs",
			streams:    []setup{{id: 1, credit: 100, n: 50, fin: true}, {id: 3, n: 0, fin: true}},
			maxPayload: 100, session: 0, maxBatch: big,
			want: []want{{3, 0, true}},
		},
		{
			name:       "stream without credit is skipped",
			streams:    []setup{{id: 1, credit: 0, n: 50}, {id: 3, credit: 100, n: 50, fin: true}},
			maxPayload: 100, session: big, maxBatch: big,
			want: []want{{3, 50, true}},
		},
		{
			name:       "empty FIN frames go before data",
			streams:    []setup{{id: 1, credit: 100, n: 50}, {id: 3, n: 0, fin: true}},
			maxPayload: 100, session: big, maxBatch: big,
			want: []want{{3, 0, true}, {1, 50, false}},
		},
		{
			name:    "round robin, one quantum per turn",
			quantum: 100,
			streams: []setup{
				{id: 1, credit: MaxCredit, n: 250, fin: true},
				{id: 3, credit: MaxCredit, n: 250},
				{id: 5, credit: MaxCredit, n: 250, fin: true},
			},
			maxPayload: 100, session: big, maxBatch: big,
			want: []want{
				{1, 100, false}, {3, 100, false}, {5, 100, false},
				{1, 100, false}, {3, 100, false}, {5, 100, false},
				{1, 50, true}, {3, 50, false}, {5, 50, true},
			},
		},
		{
			name:       "weight 2 gets two frames per turn",
			quantum:    100,
			streams:    []setup{{id: 1, weight: 1, credit: MaxCredit, n: 400}, {id: 3, weight: 2, credit: MaxCredit, n: 400}},
			maxPayload: 100, session: big, maxBatch: big,
			want: []want{
				{1, 100, false}, {3, 100, false}, {3, 100, false},
				{1, 100, false}, {3, 100, false}, {3, 100, false},
				{1, 100, false}, {1, 100, false},
			},
		},
		{
			name:       "quantum below max payload bounds the frame",
			quantum:    100,
			streams:    []setup{{id: 1, credit: MaxCredit, n: 499}, {id: 3, credit: MaxCredit, n: 499}},
			maxPayload: 1000, session: big, maxBatch: big,
			want: []want{
				{1, 199, false}, {3, 199, false},
				{1, 100, false}, {3, 100, false},
				{1, 100, false}, {3, 100, false},
				{1, 100, false}, {3, 100, false},
			},
		},
		{
			name:       "quantum not a multiple of max payload: frames stay full",
			quantum:    1000,
			streams:    []setup{{id: 1, credit: MaxCredit, n: 3 * 990, fin: true}, {id: 3, credit: MaxCredit, n: 3 * 990}},
			maxPayload: 990, session: big, maxBatch: big,
			want: []want{
				{1, 990, false}, {1, 990, false},
				{3, 990, false}, {3, 990, false},
				{1, 990, true}, {3, 990, false},
			},
		},
		{
			name:       "batch stops once maxBatch is reached",
			streams:    []setup{{id: 1, credit: MaxCredit, n: 1000}},
			maxPayload: 100, session: big, maxBatch: 150,
			want: []want{{1, 100, false}, {1, 100, false}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSched(tt.quantum)
			payload := map[uint32][]byte{}
			off := map[uint32]int{}
			for _, su := range tt.streams {
				st := &tStream{ID: su.id, Weight: su.weight}
				grant(t, s, st, su.credit)
				payload[su.id] = pattern(su.id, su.n)
				s.Enqueue(st, payload[su.id], su.fin)
			}
			var b tBatch
			used := s.Fill(&b, tt.maxPayload, tt.session, tt.maxBatch)
			ws := decodeBatch(t, &b)
			checkSent(t, ws, b.Sent())
			var got []want
			var sum int64
			for _, w := range ws {
				got = append(got, want{w.StreamID, len(w.Payload), w.Flags.Has(frame.FlagFIN)})
				if w.Flags&^frame.FlagFIN != 0 {
					t.Errorf("unexpected flags %v", w.Flags)
				}
				p := payload[w.StreamID]
				if exp := p[off[w.StreamID]:][:len(w.Payload)]; !bytes.Equal(w.Payload, exp) {
					t.Errorf("stream %d payload at offset %d differs", w.StreamID, off[w.StreamID])
				}
				off[w.StreamID] += len(w.Payload)
				sum += int64(len(w.Payload))
			}
			if !equalWants(got, tt.want) {
				t.Errorf("frames\n got %v\nwant %v", got, tt.want)
			}
			if used != sum {
				t.Errorf("Fill returned %d, DATA payload bytes %d", used, sum)
			}
		})
	}
}

func equalWants(a, b []want) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRemoveDropsPending(t *testing.T) {
	s := newSched(100)
	a, c := &tStream{ID: 1}, &tStream{ID: 3}
	grant(t, s, a, 1000)
	grant(t, s, c, 1000)
	s.Enqueue(a, pattern(1, 250), true)
	s.Enqueue(c, pattern(3, 250), false)

	var b tBatch
	s.Fill(&b, 100, 1<<20, 1) // one frame: a's first 100 bytes
	if got := b.Sent(); len(got) != 1 || got[0].Stream != a || got[0].N != 100 {
		t.Fatalf("first batch %+v", got)
	}
	b.Reset()

	if n := s.Remove(a); n != 150 {
		t.Fatalf("Remove = %d, want 150", n)
	}
	if a.Queued() || a.Pending() != 0 {
		t.Fatalf("after Remove: Queued %v, Pending %d", a.Queued(), a.Pending())
	}
	if n := s.Remove(a); n != 0 {
		t.Fatalf("second Remove = %d, want 0", n)
	}
	s.Fill(&b, 100, 1<<20, 1<<20)
	for _, e := range b.Sent() {
		if e.Stream == a {
			t.Fatalf("removed stream sent %+v", e)
		}
	}
	if got := b.Sent(); len(got) != 3 {
		t.Fatalf("want c's 3 frames, got %+v", got)
	}
	if s.HasWork(1<<20) || s.Len() != 0 {
		t.Fatalf("scheduler not empty: HasWork %v Len %d", s.HasWork(1<<20), s.Len())
	}

	// A removed stream can be enqueued again; its credit was kept.
	if a.Credit() != 900 {
		t.Fatalf("credit after Remove = %d, want 900", a.Credit())
	}
	s.Enqueue(a, pattern(1, 10), true)
	b.Reset()
	s.Fill(&b, 100, 1<<20, 1<<20)
	checkSent(t, decodeBatch(t, &b), []tSent{{Stream: a, N: 10, Fin: true}})
}

func TestRemoveEmptyFINAndBlocked(t *testing.T) {
	s := newSched(0)
	fin := &tStream{ID: 1}
	blocked := &tStream{ID: 3}
	s.Enqueue(fin, nil, true)
	s.Enqueue(blocked, pattern(3, 40), true) // no credit
	if !fin.Queued() || !blocked.Queued() {
		t.Fatal("streams not queued")
	}
	if n := s.Remove(fin); n != 0 {
		t.Fatalf("Remove(empty FIN) = %d", n)
	}
	if n := s.Remove(blocked); n != 40 {
		t.Fatalf("Remove(blocked) = %d, want 40", n)
	}
	grant(t, s, blocked, 100)
	if s.HasWork(1 << 20) {
		t.Fatal("work left after removing everything")
	}
}

func TestEnqueuePanicsWhenQueued(t *testing.T) {
	for _, first := range []struct {
		p   []byte
		fin bool
	}{{[]byte("x"), false}, {nil, true}, {[]byte("x"), true}} {
		s := newSched(0)
		st := &tStream{ID: 1}
		s.Enqueue(st, first.p, first.fin)
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("second Enqueue after (%q, %v) did not panic", first.p, first.fin)
				}
			}()
			s.Enqueue(st, []byte("y"), false)
		}()
	}
	// Empty, no FIN: a no-op, not a pending state.
	s := newSched(0)
	st := &tStream{ID: 1}
	s.Enqueue(st, nil, false)
	if st.Queued() || s.HasWork(1) {
		t.Fatal("Enqueue(nil, false) queued something")
	}
}

func TestCredit(t *testing.T) {
	s := newSched(0)
	st := &tStream{ID: 7}
	s.Enqueue(st, pattern(7, 300), true)
	if s.HasWork(1<<20) || s.Len() != 0 {
		t.Fatal("stream without credit counted as work")
	}
	if !st.Queued() {
		t.Fatal("stream with pending data not Queued")
	}
	var b tBatch
	grant(t, s, st, 120)
	if st.Credit() != 120 || !s.HasWork(1) {
		t.Fatalf("after AddCredit: credit %d HasWork %v", st.Credit(), s.HasWork(1))
	}
	s.Fill(&b, 1000, 1<<20, 1<<20)
	checkSent(t, decodeBatch(t, &b), []tSent{{Stream: st, N: 120}})
	if st.Credit() != 0 || st.Pending() != 180 || s.HasWork(1<<20) {
		t.Fatalf("after Fill: credit %d pending %d HasWork %v", st.Credit(), st.Pending(), s.HasWork(1<<20))
	}

	// Taking credit away unlinks; giving it back relinks.
	b.Reset()
	grant(t, s, st, 50)
	if !s.HasWork(1) {
		t.Fatal("stream with data and credit is not work")
	}
	if s.TakeCredit(st, 51) || st.Credit() != 50 {
		t.Fatalf("TakeCredit(51) of 50 succeeded or changed credit to %d", st.Credit())
	}
	if !s.TakeCredit(st, 50) || st.Credit() != 0 {
		t.Fatalf("TakeCredit(50) of 50 failed, credit %d", st.Credit())
	}
	if s.HasWork(1<<20) || s.Len() != 0 {
		t.Fatal("stream whose credit was taken is still work")
	}
	s.Fill(&b, 1000, 1<<20, 1<<20)
	if b.Frames() != 0 {
		t.Fatalf("sent %d frames without credit", b.Frames())
	}
	s.ReturnCredit(st, 10)
	if st.Credit() != 10 || !s.HasWork(1) {
		t.Fatalf("after ReturnCredit: credit %d HasWork %v", st.Credit(), s.HasWork(1))
	}
	grant(t, s, st, 990)
	s.Fill(&b, 1000, 1<<20, 1<<20)
	checkSent(t, decodeBatch(t, &b), []tSent{{Stream: st, N: 180, Fin: true}})
	if st.Credit() != 1000-180 || st.Queued() {
		t.Fatalf("end: credit %d queued %v", st.Credit(), st.Queued())
	}
}

func TestControlFramesFirst(t *testing.T) {
	s := newSched(0)
	var streams []*tStream
	bulk := make([]byte, 1<<20)
	for id := uint32(1); id <= 5; id += 2 {
		st := &tStream{ID: id}
		grant(t, s, st, 1<<30)
		s.Enqueue(st, bulk, false)
		streams = append(streams, st)
	}
	var b tBatch
	// Stop mid-turn of the first stream.
	s.Fill(&b, 4096, 1<<30, 10000)
	if b.Frames() < 2 || b.Sent()[0].Stream != streams[0] {
		t.Fatalf("first batch: %d frames", b.Frames())
	}
	b.Reset()

	s.PushControl(&frame.Frame{Type: frame.WindowUpdate, StreamID: 3, WindowDelta: 65536})
	s.PushControl(&frame.Frame{Type: frame.Ping, Opaque: 42})
	s.PushControlBytes(frame.AppendWindowUpdate(nil, 0, 1<<20))
	s.PushControl(&frame.Frame{Type: frame.Data, StreamID: 9, Flags: frame.FlagSYN})
	if !s.HasWork(0) {
		t.Fatal("HasWork(0) false with control queued")
	}
	used := s.Fill(&b, 4096, 1<<30, 64<<10)
	ws := decodeBatch(t, &b)
	wantCtl := []wire{
		{Type: frame.WindowUpdate, StreamID: 3, Delta: 65536},
		{Type: frame.Ping, Opaque: 42},
		{Type: frame.WindowUpdate, StreamID: 0, Delta: 1 << 20},
		{Type: frame.Data, StreamID: 9, Flags: frame.FlagSYN},
	}
	if len(ws) <= len(wantCtl) {
		t.Fatalf("got %d frames, want control then data", len(ws))
	}
	for i, w := range wantCtl {
		g := ws[i]
		if g.Type != w.Type || g.StreamID != w.StreamID || g.Flags != w.Flags || g.Delta != w.Delta || g.Opaque != w.Opaque || len(g.Payload) != 0 {
			t.Errorf("frame %d = %+v, want %+v", i, g, w)
		}
	}
	checkSent(t, ws[len(wantCtl):], b.Sent())
	// The interrupted turn resumes: the first data frame is the first
	// stream's.
	if b.Sent()[0].Stream != streams[0] {
		t.Errorf("first data frame from stream %d, want the interrupted stream %d", b.Sent()[0].Stream.ID, streams[0].ID)
	}
	var sum int64
	for _, e := range b.Sent() {
		sum += int64(e.N)
	}
	if used != sum {
		t.Errorf("used %d, sent %d", used, sum)
	}

	// Control is sent even when the batch limit and session credit leave
	// no room for data, and queued only once.
	b.Reset()
	s.PushControl(&frame.Frame{Type: frame.Ping, Flags: frame.FlagACK, Opaque: 7})
	if used := s.Fill(&b, 4096, 0, 0); used != 0 || b.Frames() != 1 {
		t.Fatalf("control-only Fill: used %d, %d frames", used, b.Frames())
	}
	ws = decodeBatch(t, &b)
	if ws[0].Type != frame.Ping || ws[0].Opaque != 7 || !ws[0].Flags.Has(frame.FlagACK) {
		t.Fatalf("got %+v", ws[0])
	}
	b.Reset()
	s.Fill(&b, 4096, 0, 1<<20)
	if b.Frames() != 0 {
		t.Fatalf("control frame sent twice: %d frames", b.Frames())
	}
}

func TestHasWorkMatchesFill(t *testing.T) {
	s := newSched(0)
	st := &tStream{ID: 1}
	var b tBatch
	check := func(session int64) {
		t.Helper()
		hw := s.HasWork(session)
		b.Reset()
		s.Fill(&b, 100, session, 1<<20)
		if hw != (b.Frames() > 0) {
			t.Fatalf("HasWork(%d) = %v, Fill emitted %d frames", session, hw, b.Frames())
		}
	}
	check(100) // empty
	s.Enqueue(st, []byte("abc"), false)
	check(100) // no credit
	grant(t, s, st, 10)
	check(0)   // no session credit
	check(100) // sends
	s.Enqueue(st, nil, true)
	check(0) // empty FIN
	check(100)
}

func TestBatchBuffersReuse(t *testing.T) {
	s := newSched(0)
	sts := make([]*tStream, 50)
	for i := range sts {
		sts[i] = &tStream{ID: uint32(2*i + 1)}
		grant(t, s, sts[i], 1<<30)
	}
	var b tBatch
	for round := range 3 {
		payloads := make([][]byte, len(sts))
		for i, st := range sts {
			payloads[i] = pattern(st.ID+uint32(round), 300+round*17)
			s.Enqueue(st, payloads[i], true)
			// A control frame between every enqueue, so arena runs and
			// payloads interleave irregularly.
			s.PushControl(&frame.Frame{Type: frame.Ping, Opaque: uint64(i)})
		}
		// Small max payload: many frames, the arena grows (and is
		// reallocated) while the batch is built.
		s.Fill(&b, 64, 1<<30, 1<<30)
		first := b.Buffers()
		var again bytes.Buffer
		bufs := b.Buffers()
		if _, err := bufs.WriteTo(&again); err != nil {
			t.Fatal(err)
		}
		ws := decodeBatch(t, &b) // writes a third Buffers()
		if len(first) == 0 {
			t.Fatal("empty Buffers")
		}
		if again.Len() != b.Size() {
			t.Fatalf("second Buffers() wrote %d bytes, Size %d", again.Len(), b.Size())
		}
		got := map[uint32][]byte{}
		for _, w := range ws[len(sts):] {
			got[w.StreamID] = append(got[w.StreamID], w.Payload...)
		}
		for i, st := range sts {
			if !bytes.Equal(got[st.ID], payloads[i]) {
				t.Fatalf("round %d stream %d: payload differs", round, st.ID)
			}
		}
		checkSent(t, ws[len(sts):], b.Sent())
		b.Reset()
		if b.Size() != 0 || b.Frames() != 0 || len(b.Sent()) != 0 || len(b.Buffers()) != 0 {
			t.Fatal("Reset left data behind")
		}
	}
}

func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("alloc counting")
	}
	s := newSched(4096)
	buf := make([]byte, 1<<20)
	sts := make([]tStream, 100)
	for i := range sts {
		sts[i].ID = uint32(2*i + 1)
		grant(t, s, &sts[i], MaxCredit)
		s.Enqueue(&sts[i], buf, false)
	}
	var b tBatch
	wu := frame.Frame{Type: frame.WindowUpdate, StreamID: 1, WindowDelta: 1000}
	step := func() {
		s.PushControl(&wu)
		s.Fill(&b, 4096, 1<<60, 256<<10)
		_ = b.Buffers()
		for _, e := range b.Sent() {
			if !e.Stream.Queued() {
				s.Enqueue(e.Stream, buf, false)
			}
		}
		b.Reset()
	}
	for range 1000 {
		step()
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("steady state allocates %v times per batch", n)
	}
}

func TestDebtSurvivesCreditStall(t *testing.T) {
	// A frame may overdraw a turn's deficit; the debt is paid in the
	// stream's next turn even if it left the ring for lack of credit in
	// between, so stalling does not earn a stream extra bytes.
	s := newSched(100)
	a, c := &tStream{ID: 1}, &tStream{ID: 3}
	grant(t, s, a, 150)
	grant(t, s, c, 1<<20)
	s.Enqueue(a, pattern(1, 1000), false)
	s.Enqueue(c, pattern(3, 1000), false)
	var b tBatch
	got := func() []tSent {
		b.Reset()
		s.Fill(&b, 150, 1<<20, 1)
		return append([]tSent(nil), b.Sent()...)
	}
	// a: deficit 100, sends 150 (debt 50), out of credit.
	if e := got(); len(e) != 1 || e[0].Stream != a || e[0].N != 150 {
		t.Fatalf("first frame %+v", e)
	}
	grant(t, s, a, 1<<20) // a rejoins behind c
	if e := got(); e[0].Stream != c || e[0].N != 150 {
		t.Fatalf("second frame %+v", e)
	}
	// a's turn: deficit -50+100 = 50, so its frame is cut to 50+99.
	if e := got(); e[0].Stream != a || e[0].N != 149 {
		t.Fatalf("third frame %+v, want stream 1 with 149 bytes", e)
	}
}

func TestNewSchedulerQuantum(t *testing.T) {
	for _, tt := range []struct{ in, want int }{
		{0, DefaultQuantum}, {-5, DefaultQuantum}, {1, 1}, {4096, 4096}, {1 << 40, MaxQuantum},
	} {
		if got := newSched(tt.in).quantum; got != int64(tt.want) {
			t.Errorf("newSched(%d).quantum = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestEnqueueFrame: a prepaid frame goes out whole, with its flags, after
// control frames and ahead of DRR data, needing no credit.
func TestEnqueueFrame(t *testing.T) {
	s := newSched(0)
	var a, b tStream
	a.ID, b.ID = 1, 3
	s.Enqueue(&b, make([]byte, 100), false)
	grant(t, s, &b, 1000)
	s.PushControl(&frame.Frame{Type: frame.Ping, Opaque: 7})
	payload := []byte("compressed-bytes")
	s.EnqueueFrame(&a, payload, frame.FlagCompressed)
	if !a.Queued() || a.Pending() != len(payload) {
		t.Fatalf("Queued %v Pending %d", a.Queued(), a.Pending())
	}
	if !s.HasWork(0) {
		t.Fatal("HasWork(0) false with a prepaid frame queued")
	}
	var batch tBatch
	used := s.Fill(&batch, 1<<10, 0, 1<<20) // no session credit at all
	if used != 0 {
		t.Fatalf("used %d session credit, want 0", used)
	}
	var wire []byte
	for _, seg := range batch.Buffers() {
		wire = append(wire, seg...)
	}
	rd := frame.NewReader(bytes.NewReader(wire), 1<<20)
	f, err := rd.ReadFrame()
	if err != nil || f.Type != frame.Ping {
		t.Fatalf("first frame %v, %v; want the PING", f, err)
	}
	f, err = rd.ReadFrame()
	if err != nil || f.StreamID != 1 || f.Flags != frame.FlagCompressed || !bytes.Equal(f.Payload, payload) {
		t.Fatalf("second frame %v, %v; want the prepaid frame", f, err)
	}
	if _, err := rd.ReadFrame(); err != io.EOF {
		t.Fatalf("more frames without session credit: %v", err)
	}
	sent := batch.Sent()
	if len(sent) != 1 || sent[0].Stream != &a || !sent[0].Prepaid || sent[0].N != len(payload) {
		t.Fatalf("Sent %+v", sent)
	}
	if a.Queued() {
		t.Fatal("stream still queued after its frame went out")
	}
	// Remove drops an unsent prepaid frame.
	s.EnqueueFrame(&a, payload, 0)
	if n := s.Remove(&a); n != len(payload) || a.Queued() || s.HasWork(0) {
		t.Fatalf("Remove dropped %d, queued %v, HasWork %v", n, a.Queued(), s.HasWork(0))
	}
}

// TestAddCreditOverflow: credit may reach MaxCredit exactly; a grant
// beyond it is refused with ErrCreditOverflow and changes nothing.
func TestAddCreditOverflow(t *testing.T) {
	s := newSched(0)
	st := &tStream{ID: 1}
	s.Enqueue(st, pattern(1, 10), false)
	// Refused from zero: the stream stays out of the ring.
	if err := s.AddCredit(st, math.MaxUint32); !errors.Is(err, ErrCreditOverflow) {
		t.Fatalf("AddCredit(MaxUint32) = %v, want ErrCreditOverflow", err)
	}
	if st.Credit() != 0 || s.HasWork(1<<20) || s.Len() != 0 {
		t.Fatalf("refused grant changed things: credit %d HasWork %v Len %d", st.Credit(), s.HasWork(1<<20), s.Len())
	}
	grant(t, s, st, MaxCredit-100)
	grant(t, s, st, 100) // exactly MaxCredit
	grant(t, s, st, 0)
	if st.Credit() != MaxCredit || s.Len() != 1 {
		t.Fatalf("credit %d Len %d, want %d 1", st.Credit(), s.Len(), MaxCredit)
	}
	for _, n := range []uint32{1, 1 << 31, math.MaxUint32} {
		if err := s.AddCredit(st, n); !errors.Is(err, ErrCreditOverflow) {
			t.Fatalf("AddCredit(%d) at MaxCredit = %v, want ErrCreditOverflow", n, err)
		}
		if st.Credit() != MaxCredit || s.Len() != 1 {
			t.Fatalf("refused AddCredit(%d): credit %d Len %d", n, st.Credit(), s.Len())
		}
	}
	// One byte below the limit after sending: one more is fine, two not.
	var b tBatch
	s.Fill(&b, 1, 1<<20, 1)
	if st.Credit() != MaxCredit-1 {
		t.Fatalf("after one byte: credit %d", st.Credit())
	}
	if err := s.AddCredit(st, 2); !errors.Is(err, ErrCreditOverflow) || st.Credit() != MaxCredit-1 {
		t.Fatalf("AddCredit(2) = %v, credit %d", err, st.Credit())
	}
	grant(t, s, st, 1)
}

// TestTakeReturnCredit: TakeCredit takes all or nothing; ReturnCredit
// gives back, saturating at MaxCredit; neither moves credit out of
// [0, MaxCredit].
func TestTakeReturnCredit(t *testing.T) {
	s := newSched(0)
	st := &tStream{ID: 1}
	if !s.TakeCredit(st, 0) || s.TakeCredit(st, 1) || s.TakeCredit(st, -1) || st.Credit() != 0 {
		t.Fatalf("on zero credit: credit %d", st.Credit())
	}
	grant(t, s, st, 100)
	if s.TakeCredit(st, -5) || st.Credit() != 100 {
		t.Fatalf("TakeCredit(-5): credit %d", st.Credit())
	}
	if !s.TakeCredit(st, 40) || st.Credit() != 60 {
		t.Fatalf("TakeCredit(40) of 100: credit %d", st.Credit())
	}
	s.ReturnCredit(st, 0)
	s.ReturnCredit(st, -1000)
	if st.Credit() != 60 {
		t.Fatalf("ReturnCredit(<= 0) changed credit to %d", st.Credit())
	}
	s.ReturnCredit(st, 40)
	if st.Credit() != 100 {
		t.Fatalf("ReturnCredit(40): credit %d", st.Credit())
	}
	// Saturation: a WINDOW_UPDATE refilled the window while a prepaid
	// frame was out; giving its credit back stops at MaxCredit.
	grant(t, s, st, MaxCredit-100-5)
	s.ReturnCredit(st, 100)
	if st.Credit() != MaxCredit {
		t.Fatalf("ReturnCredit past MaxCredit: credit %d", st.Credit())
	}
	s.ReturnCredit(st, math.MaxInt)
	if st.Credit() != MaxCredit {
		t.Fatalf("ReturnCredit(MaxInt): credit %d", st.Credit())
	}
	if !s.TakeCredit(st, MaxCredit) || st.Credit() != 0 {
		t.Fatalf("TakeCredit(MaxCredit): credit %d", st.Credit())
	}
	s.ReturnCredit(st, math.MaxInt)
	if st.Credit() != MaxCredit {
		t.Fatalf("ReturnCredit(MaxInt) from 0: credit %d", st.Credit())
	}
}

// TestPrepaidCredit: the flow of a compressing writer. Credit taken with
// TakeCredit pays for an EnqueueFrame frame, Fill takes no more, and
// credit for a frame removed unsent comes back with ReturnCredit. A
// stream waiting for credit joins the ring when credit is returned.
func TestPrepaidCredit(t *testing.T) {
	s := newSched(0)
	a := &tStream{ID: 1, Owner: &owner{"a"}}
	grant(t, s, a, 100)
	p := pattern(1, 60)
	if !s.TakeCredit(a, len(p)) {
		t.Fatal("TakeCredit(60) of 100 failed")
	}
	s.EnqueueFrame(a, p, frame.FlagCompressed)
	var b tBatch
	if used := s.Fill(&b, 1000, 1<<20, 1<<20); used != 0 {
		t.Fatalf("Fill used %d session credit for a prepaid frame", used)
	}
	if e := b.Sent(); len(e) != 1 || e[0].Stream != a || !e[0].Prepaid || e[0].N != 60 || e[0].Stream.Owner.name != "a" {
		t.Fatalf("Sent %+v", e)
	}
	if a.Credit() != 40 {
		t.Fatalf("credit after the prepaid frame: %d, want 40", a.Credit())
	}
	b.Reset()

	// Dropped unsent: the credit comes back.
	if !s.TakeCredit(a, 40) {
		t.Fatal("TakeCredit(40) of 40 failed")
	}
	s.EnqueueFrame(a, p[:40], frame.FlagCompressed)
	if n := s.Remove(a); n != 40 {
		t.Fatalf("Remove = %d", n)
	}
	s.ReturnCredit(a, 40)
	if a.Credit() != 40 || s.HasWork(1<<20) {
		t.Fatalf("after Remove and ReturnCredit: credit %d HasWork %v", a.Credit(), s.HasWork(1<<20))
	}

	// Data waiting for credit is sent once credit is returned.
	if !s.TakeCredit(a, 40) {
		t.Fatal("TakeCredit(40) failed")
	}
	s.Enqueue(a, p, true)
	if s.HasWork(1 << 20) {
		t.Fatal("stream without credit is work")
	}
	s.ReturnCredit(a, 40)
	s.Fill(&b, 1000, 1<<20, 1<<20)
	checkSent(t, decodeBatch(t, &b), []tSent{{Stream: a, N: 40}})
	if a.Credit() != 0 || a.Pending() != 20 {
		t.Fatalf("credit %d pending %d", a.Credit(), a.Pending())
	}
}
