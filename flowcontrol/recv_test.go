package flowcontrol

import (
	"errors"
	"testing"
	"time"
	"unsafe"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestNewRecvWindow(t *testing.T) {
	w := NewRecvWindow(1000, 4000, t0)
	if w.Window() != 1000 || w.Credit() != 1000 || w.Granted() != 1000 || w.Buffered() != 0 ||
		w.Received() != 0 || w.Consumed() != 0 || w.Reserved() != 0 {
		t.Fatalf("fresh window: %+v", w)
	}
	NewRecvWindow(MaxWindow, MaxWindow, t0)
	NewRecvWindow(1, 1, t0)
	for _, c := range []struct{ initial, max uint32 }{
		{0, 10}, {11, 10}, {10, MaxWindow + 1}, {MaxWindow + 1, MaxWindow + 1},
	} {
		mustPanic(t, "NewRecvWindow", func() { NewRecvWindow(c.initial, c.max, t0) })
	}
}

func TestRecvWindowReceive(t *testing.T) {
	tests := []struct {
		name       string
		receives   []int
		wantErr    bool // of the last Receive
		wantRecv   uint64
		wantCredit int64
	}{
		{"within", []int{400}, false, 400, 600},
		{"several", []int{100, 200, 300}, false, 600, 400},
		{"zero", []int{0}, false, 0, 1000},
		{"exact credit", []int{1000}, false, 1000, 0},
		{"exact after part", []int{600, 400}, false, 1000, 0},
		{"zero at zero credit", []int{1000, 0}, false, 1000, 0},
		{"one beyond", []int{1001}, true, 0, 1000},
		{"one beyond after part", []int{600, 401}, true, 600, 400},
		{"any at zero credit", []int{1000, 1}, true, 1000, 0},
		{"huge", []int{1 << 40}, true, 0, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewRecvWindow(1000, 1000, t0)
			var err error
			for i, n := range tt.receives {
				before := w
				err = w.Receive(n)
				if err != nil && i < len(tt.receives)-1 {
					t.Fatalf("Receive(%d): %v", n, err)
				}
				if err != nil && w != before {
					t.Fatalf("failed Receive changed state: %+v -> %+v", before, w)
				}
			}
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrFlowControl)) {
				t.Fatalf("error %v, want ErrFlowControl: %v", err, tt.wantErr)
			}
			if w.Received() != tt.wantRecv || w.Credit() != tt.wantCredit || w.Buffered() != int(tt.wantRecv) {
				t.Errorf("Received %d Credit %d Buffered %d, want %d %d", w.Received(), w.Credit(), w.Buffered(), tt.wantRecv, tt.wantCredit)
			}
		})
	}
	w := NewRecvWindow(10, 10, t0)
	mustPanic(t, "Receive(-1)", func() { _ = w.Receive(-1) })
}

// TestRecvWindowUpdateThreshold checks when updates are due and their size,
// on a window that cannot grow (initial == max).
func TestRecvWindowUpdateThreshold(t *testing.T) {
	type step struct {
		receive, consume int
		wantDelta        uint32
	}
	tests := []struct {
		name   string
		window uint32
		steps  []step
	}{
		{"below quarter", 1000, []step{{1000, 249, 0}}},
		{"exact quarter", 1000, []step{{1000, 250, 250}}},
		{"accumulates to quarter", 1000, []step{{1000, 100, 0}, {0, 100, 0}, {0, 49, 0}, {0, 1, 250}}},
		{"whole window at once", 1000, []step{{1000, 1000, 1000}}},
		{"after update counts afresh", 1000, []step{{1000, 300, 300}, {0, 249, 0}, {0, 1, 250}}},
		{"consume zero", 1000, []step{{500, 0, 0}}},
		{"refills credit", 1000, []step{{1000, 500, 500}, {500, 1000, 1000}}},
		// A window of 1..3 has a quarter of 0; any consumption is due.
		{"tiny window", 3, []step{{3, 1, 1}, {1, 0, 0}, {0, 3, 3}}},
		{"one byte window", 1, []step{{1, 1, 1}, {1, 1, 1}}},
		// window/4 rounds down: 1001/4 = 250.
		{"odd window", 1001, []step{{1001, 249, 0}, {0, 1, 250}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewRecvWindow(tt.window, tt.window, t0)
			b := NewBudget(1 << 30)
			for i, s := range tt.steps {
				if err := w.Receive(s.receive); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				due := w.UpdateDue(s.consume, time.Millisecond)
				// Instant drain, known RTT, a budget: growth is only
				// ruled out by max == initial.
				got := w.Consume(s.consume, t0, time.Millisecond, &b)
				if got != s.wantDelta {
					t.Fatalf("step %d: Consume(%d) = %d, want %d", i, s.consume, got, s.wantDelta)
				}
				if due != (got != 0) {
					t.Fatalf("step %d: UpdateDue(%d) = %v, but Consume returned %d", i, s.consume, due, got)
				}
				if w.Granted() != w.Received()+uint64(w.Credit()) {
					t.Fatalf("step %d: Granted %d != Received %d + Credit %d", i, w.Granted(), w.Received(), w.Credit())
				}
				if w.Window() != tt.window || b.Used() != 0 {
					t.Fatalf("step %d: window changed to %d, budget used %d", i, w.Window(), b.Used())
				}
			}
			// After any update the peer's credit, counted from what was
			// consumed, is the whole window.
			if w.Granted() != w.Consumed()+uint64(tt.window) && tt.steps[len(tt.steps)-1].wantDelta != 0 {
				t.Errorf("Granted %d, want Consumed %d + window %d", w.Granted(), w.Consumed(), tt.window)
			}
		})
	}
}

func TestRecvWindowConsumePanics(t *testing.T) {
	w := NewRecvWindow(1000, 1000, t0)
	if err := w.Receive(100); err != nil {
		t.Fatal(err)
	}
	mustPanic(t, "Consume beyond Buffered", func() { w.Consume(101, t0, 0, nil) })
	mustPanic(t, "Consume(-1)", func() { w.Consume(-1, t0, 0, nil) })
	if w.Consumed() != 0 || w.Buffered() != 100 {
		t.Fatalf("panicking Consume changed state: consumed %d buffered %d", w.Consumed(), w.Buffered())
	}
	w.Consume(100, t0, 0, nil)
	mustPanic(t, "Consume when empty", func() { w.Consume(1, t0, 0, nil) })
}

// TestRecvWindowGrowth drives one update of a 1000-byte window: receive
// the full window, then consume `consume` bytes `elapsed` after the epoch
// started.
func TestRecvWindowGrowth(t *testing.T) {
	const rtt = 10 * time.Millisecond
	tests := []struct {
		name       string
		max        uint32
		budget     int64 // < 0: nil Budget
		rtt        time.Duration
		consume    int
		elapsed    time.Duration
		wantWindow uint32
		wantDelta  uint32
	}{
		// 600 of 1000 bytes in the epoch: grows if elapsed < 4*10ms*0.6 = 24ms.
		{"fast drain doubles", 4000, 1 << 20, rtt, 600, time.Millisecond, 2000, 1600},
		{"just under the bound", 4000, 1 << 20, rtt, 600, 24*time.Millisecond - 1, 2000, 1600},
		{"at the bound", 4000, 1 << 20, rtt, 600, 24 * time.Millisecond, 1000, 600},
		{"slow drain", 4000, 1 << 20, rtt, 600, time.Second, 1000, 600},
		{"instant drain", 4000, 1 << 20, rtt, 1000, 0, 2000, 2000},
		{"capped by max", 1500, 1 << 20, rtt, 600, time.Millisecond, 1500, 1100},
		{"already at max", 1000, 1 << 20, rtt, 600, time.Millisecond, 1000, 600},
		{"budget exactly enough", 4000, 1000, rtt, 600, time.Millisecond, 2000, 1600},
		{"budget one short", 4000, 999, rtt, 600, time.Millisecond, 1000, 600},
		{"zero budget", 4000, 0, rtt, 600, time.Millisecond, 1000, 600},
		{"nil budget", 4000, -1, rtt, 600, time.Millisecond, 1000, 600},
		{"unknown rtt", 4000, 1 << 20, 0, 600, time.Millisecond, 1000, 600},
		{"negative rtt", 4000, 1 << 20, -rtt, 600, time.Millisecond, 1000, 600},
		{"clock went back", 4000, 1 << 20, rtt, 600, -time.Millisecond, 1000, 600},
		// Half a window or less in the epoch: no judgement yet.
		{"half window not judged", 4000, 1 << 20, rtt, 500, 0, 1000, 500},
		// Huge values must not overflow the comparison.
		{"huge rtt", 4000, 1 << 20, 1<<63 - 1, 600, 1<<63 - 1, 2000, 1600},
		{"huge elapsed", 4000, 1 << 20, rtt, 600, 1<<63 - 1, 1000, 600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewRecvWindow(1000, tt.max, t0)
			var b *Budget
			if tt.budget >= 0 {
				bb := NewBudget(tt.budget)
				b = &bb
			}
			// Receive only what is then consumed: the reader keeps up
			// (TestRecvWindowNoGrowthWithBacklog covers the other case).
			if err := w.Receive(tt.consume); err != nil {
				t.Fatal(err)
			}
			delta := w.Consume(tt.consume, t0.Add(tt.elapsed), tt.rtt, b)
			if w.Window() != tt.wantWindow || delta != tt.wantDelta {
				t.Fatalf("Window %d delta %d, want %d %d", w.Window(), delta, tt.wantWindow, tt.wantDelta)
			}
			growth := tt.wantWindow - 1000
			if w.Reserved() != growth {
				t.Errorf("Reserved %d, want %d", w.Reserved(), growth)
			}
			if b != nil && b.Used() != int64(growth) {
				t.Errorf("budget Used %d, want %d", b.Used(), growth)
			}
			if w.Credit() != int64(w.Consumed())+int64(w.Window())-int64(w.Received()) {
				t.Errorf("Credit %d does not restore the window", w.Credit())
			}
		})
	}
}

// TestRecvWindowEpoch checks that the epoch restarts after each judgement,
// so the rate is measured afresh, and that growth stops at max.
func TestRecvWindowEpoch(t *testing.T) {
	const rtt = 10 * time.Millisecond
	b := NewBudget(1 << 20)
	w := NewRecvWindow(1000, 8000, t0)
	now := t0
	// drain receives and consumes the whole credit `after` later.
	drain := func(after time.Duration) uint32 {
		t.Helper()
		n := int(w.Credit())
		if err := w.Receive(n); err != nil {
			t.Fatal(err)
		}
		now = now.Add(after)
		return w.Consume(n, now, rtt, &b)
	}
	for i, want := range []uint32{2000, 4000, 8000, 8000} {
		drain(time.Millisecond)
		if w.Window() != want {
			t.Fatalf("fast drain %d: window %d, want %d", i, w.Window(), want)
		}
	}
	if b.Used() != 7000 || w.Reserved() != 7000 {
		t.Fatalf("budget Used %d Reserved %d, want 7000", b.Used(), w.Reserved())
	}

	// A slow window: one fast drain after a long pause is judged on its
	// own epoch, which started at the previous update, so the pause counts.
	w2 := NewRecvWindow(1000, 8000, t0)
	w, now = w2, t0
	drain(time.Second) // slow: epoch 1
	if w.Window() != 1000 {
		t.Fatalf("slow drain grew the window to %d", w.Window())
	}
	drain(time.Millisecond) // fast: epoch 2 started at the previous update
	if w.Window() != 2000 {
		t.Fatalf("fast drain after slow one: window %d, want 2000", w.Window())
	}
}

func TestRecvWindowClose(t *testing.T) {
	b := NewBudget(10000)
	w := NewRecvWindow(1000, 4000, t0)
	if err := w.Receive(1000); err != nil {
		t.Fatal(err)
	}
	w.Consume(1000, t0, time.Millisecond, &b)
	if w.Window() != 2000 || b.Used() != 1000 {
		t.Fatalf("setup: window %d used %d", w.Window(), b.Used())
	}
	// Another window's reservation must survive w's Close.
	if !b.Reserve(500) {
		t.Fatal("Reserve(500)")
	}

	w.Close(&b)
	if b.Used() != 500 || w.Reserved() != 0 {
		t.Fatalf("after Close: Used %d Reserved %d, want 500 0", b.Used(), w.Reserved())
	}
	w.Close(&b)
	w.Close(nil)
	if b.Used() != 500 {
		t.Fatalf("second Close released again: Used %d", b.Used())
	}
	// A closed window keeps its size and accounting but no longer grows.
	if w.Window() != 2000 {
		t.Fatalf("Close shrank the window to %d", w.Window())
	}
	n := int(w.Credit())
	if err := w.Receive(n); err != nil {
		t.Fatal(err)
	}
	if d := w.Consume(n, t0, time.Millisecond, &b); d != uint32(n) || w.Window() != 2000 || b.Used() != 500 {
		t.Fatalf("Consume after Close: delta %d window %d used %d", d, w.Window(), b.Used())
	}

	// A window that never grew may be closed with a nil Budget.
	w2 := NewRecvWindow(1000, 4000, t0)
	w2.Close(nil)
	// One holding growth may not.
	w3 := NewRecvWindow(1000, 4000, t0)
	_ = w3.Receive(1000)
	w3.Consume(1000, t0, time.Millisecond, &b)
	mustPanic(t, "Close(nil) holding growth", func() { w3.Close(nil) })
	// Nor may it release into a budget that holds less than it reserved.
	other := NewBudget(10000)
	mustPanic(t, "Close with a different budget", func() { w3.Close(&other) })
	w3.Close(&b)
	if b.Used() != 500 {
		t.Fatalf("Used %d after closing w3, want 500", b.Used())
	}
}

func TestSizes(t *testing.T) {
	// Per-stream state must stay small: the project targets < 1 KiB of
	// heap per idle stream for everything.
	send, recv, budget := unsafe.Sizeof(SendWindow{}), unsafe.Sizeof(RecvWindow{}), unsafe.Sizeof(Budget{})
	t.Logf("unsafe.Sizeof: SendWindow %d, RecvWindow %d, Budget %d bytes", send, recv, budget)
	if send > 16 || recv > 72 || budget > 16 {
		t.Errorf("types grew: SendWindow %d (max 16), RecvWindow %d (max 72), Budget %d (max 16)", send, recv, budget)
	}
}

func TestNoAllocs(t *testing.T) {
	b := NewBudget(1 << 30)
	r := NewRecvWindow(256<<10, 16<<20, t0)
	s := NewSendWindow(256 << 10)
	now := t0
	allocs := testing.AllocsPerRun(1000, func() {
		n := int(min(s.Available(), 16<<10))
		s.Take(n)
		if err := r.Receive(n); err != nil {
			panic(err)
		}
		now = now.Add(time.Microsecond)
		if d := r.Consume(n, now, time.Millisecond, &b); d > 0 {
			if err := s.Add(d); err != nil {
				panic(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("send/receive/consume/update cycle: %v allocs, want 0", allocs)
	}
	if r.Window() <= 256<<10 {
		t.Fatalf("the cycle never exercised growth: window %d", r.Window())
	}
}

// A reader that drains fast but leaves more than a quarter window unread
// is the bottleneck itself: the window must not grow.
func TestRecvWindowNoGrowthWithBacklog(t *testing.T) {
	for _, tt := range []struct {
		name     string
		received int
		want     uint32
	}{
		{"keeping up", 600, 2000},
		{"quarter left", 850, 2000},
		{"backlog", 1000, 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(1 << 20)
			w := NewRecvWindow(1000, 1<<20, t0)
			if err := w.Receive(tt.received); err != nil {
				t.Fatal(err)
			}
			w.Consume(600, t0.Add(time.Millisecond), 10*time.Millisecond, &b)
			if w.Window() != tt.want {
				t.Fatalf("window %d after consuming 600 of %d received, want %d", w.Window(), tt.received, tt.want)
			}
		})
	}
}

// Without an RTT (a path too short to tune on) updates wait for half the
// window rather than a quarter.
func TestRecvWindowShortPathThreshold(t *testing.T) {
	w := NewRecvWindow(1000, 1000, t0)
	if err := w.Receive(1000); err != nil {
		t.Fatal(err)
	}
	if w.UpdateDue(499, 0) || !w.UpdateDue(500, 0) || !w.UpdateDue(250, time.Millisecond) {
		t.Fatalf("UpdateDue(499, 0) %v, UpdateDue(500, 0) %v, UpdateDue(250, 1ms) %v; want false, true, true",
			w.UpdateDue(499, 0), w.UpdateDue(500, 0), w.UpdateDue(250, time.Millisecond))
	}
	if d := w.Consume(499, t0, 0, nil); d != 0 {
		t.Fatalf("Consume(499) with no RTT = %d, want 0", d)
	}
	if d := w.Consume(1, t0, 0, nil); d != 500 {
		t.Fatalf("Consume(1) at half the window = %d, want 500", d)
	}
}

// TestRecvWindowShrink: Shrink returns the window to its initial size and
// its growth to the budget; credit already granted stays granted, and no
// update is due until the application has consumed past it, after which
// updates restore the initial window's credit (and growth resumes).
func TestRecvWindowShrink(t *testing.T) {
	const rtt = 10 * time.Millisecond
	b := NewBudget(1 << 20)
	w := NewRecvWindow(1000, 8000, t0)
	// Grow twice: 1000 -> 2000 -> 4000, the reader keeping up.
	now := t0
	for range 2 {
		n := int(w.Credit())
		if err := w.Receive(n); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Millisecond)
		w.Consume(n, now, rtt, &b)
	}
	if w.Window() != 4000 || b.Used() != 3000 {
		t.Fatalf("after growth: Window %d, budget used %d; want 4000, 3000", w.Window(), b.Used())
	}
	granted := w.Granted()
	w.Shrink(now, &b)
	if w.Window() != 1000 || w.Reserved() != 0 || b.Used() != 0 {
		t.Fatalf("after Shrink: Window %d Reserved %d budget used %d; want 1000, 0, 0", w.Window(), w.Reserved(), b.Used())
	}
	if w.Granted() != granted {
		t.Fatalf("Shrink took back credit: Granted %d, was %d", w.Granted(), granted)
	}
	// The peer spends the credit granted before the shrink: 4000 bytes,
	// more than the window now is. Consuming them brings no update until
	// the consumed offset is within a window of Granted.
	credit := int(w.Credit())
	if credit != 4000 {
		t.Fatalf("Credit %d, want 4000", credit)
	}
	if err := w.Receive(credit); err != nil {
		t.Fatal(err)
	}
	if w.Buffered() != 4000 {
		t.Fatalf("Buffered %d, want 4000", w.Buffered())
	}
	for i, n := range []int{1000, 1000, 1000} { // up to Granted-1000: nothing due
		if w.UpdateDue(n, rtt) {
			t.Fatalf("step %d: UpdateDue with %d granted beyond the window", i, w.Granted()-w.Consumed()-uint64(w.Window()))
		}
		if d := w.Consume(n, now, rtt, &b); d != 0 {
			t.Fatalf("step %d: Consume returned delta %d while more than the window is granted", i, d)
		}
	}
	// The next 250 (a quarter of the shrunk window) make an update due,
	// which grants up to a window past what was consumed.
	if !w.UpdateDue(250, rtt) {
		t.Fatal("UpdateDue false a quarter window past the old grant")
	}
	if d := w.Consume(250, now, rtt, &b); d != 250 || w.Granted() != w.Consumed()+1000 {
		t.Fatalf("Consume(250) = %d, Granted %d with %d consumed; want 250, consumed + 1000", d, w.Granted(), w.Consumed())
	}
	// Shrinking a window without growth changes nothing, and needs no
	// budget.
	w.Shrink(now, nil)
	if w.Window() != 1000 {
		t.Fatalf("Window %d after a second Shrink", w.Window())
	}
}

// TestRecvWindowShrinkPanics: Shrink with growth held needs the Budget
// that paid for it.
func TestRecvWindowShrinkPanics(t *testing.T) {
	b := NewBudget(1 << 20)
	w := NewRecvWindow(1000, 8000, t0)
	if err := w.Receive(1000); err != nil {
		t.Fatal(err)
	}
	w.Consume(1000, t0.Add(time.Millisecond), 10*time.Millisecond, &b)
	if w.Reserved() == 0 {
		t.Fatal("the window did not grow")
	}
	mustPanic(t, "Shrink(nil) holding growth", func() { w.Shrink(t0, nil) })
}
