package flowcontrol

import (
	"errors"
	"testing"
)

func TestSendWindowZeroValue(t *testing.T) {
	var w SendWindow
	if got := w.Available(); got != 0 {
		t.Fatalf("zero SendWindow Available = %d, want 0", got)
	}
	w.Take(0) // spending nothing is always allowed
	mustPanic(t, "Take(1) on zero window", func() { w.Take(1) })
	if err := w.Add(10); err != nil {
		t.Fatal(err)
	}
	if got := w.Available(); got != 10 {
		t.Fatalf("after Add(10) Available = %d, want 10", got)
	}
}

func TestNewSendWindow(t *testing.T) {
	for _, initial := range []uint32{0, 1, 256 << 10, MaxWindow} {
		w := NewSendWindow(initial)
		if w.Available() != int64(initial) || w.Sent() != 0 || w.Limit() != uint64(initial) {
			t.Errorf("NewSendWindow(%d): Available %d Sent %d Limit %d", initial, w.Available(), w.Sent(), w.Limit())
		}
	}
	mustPanic(t, "NewSendWindow(MaxWindow+1)", func() { NewSendWindow(MaxWindow + 1) })
	mustPanic(t, "NewSendWindow(MaxUint32)", func() { NewSendWindow(^uint32(0)) })
}

func TestSendWindowTake(t *testing.T) {
	tests := []struct {
		name      string
		initial   uint32
		takes     []int
		wantAvail int64
		wantSent  uint64
		wantPanic bool // on the last take
	}{
		{"nothing", 100, []int{0}, 100, 0, false},
		{"part", 100, []int{30}, 70, 30, false},
		{"several", 100, []int{30, 20, 10}, 40, 60, false},
		{"exact credit", 100, []int{100}, 0, 100, false},
		{"exact after part", 100, []int{60, 40}, 0, 100, false},
		{"zero at zero credit", 100, []int{100, 0}, 0, 100, false},
		{"one beyond", 100, []int{101}, 100, 0, true},
		{"beyond after part", 100, []int{60, 41}, 40, 60, true},
		{"negative", 100, []int{-1}, 100, 0, true},
		{"max window", MaxWindow, []int{MaxWindow}, 0, MaxWindow, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewSendWindow(tt.initial)
			for i, n := range tt.takes {
				if i == len(tt.takes)-1 && tt.wantPanic {
					mustPanic(t, "Take", func() { w.Take(n) })
				} else {
					w.Take(n)
				}
			}
			if w.Available() != tt.wantAvail || w.Sent() != tt.wantSent {
				t.Errorf("Available %d Sent %d, want %d %d", w.Available(), w.Sent(), tt.wantAvail, tt.wantSent)
			}
		})
	}
}

func TestSendWindowAdd(t *testing.T) {
	tests := []struct {
		name      string
		initial   uint32
		take      int
		deltas    []uint32
		wantErr   error // of the last Add
		wantAvail int64
		wantLimit uint64
	}{
		{"zero delta", 100, 0, []uint32{0}, nil, 100, 100},
		{"grant", 100, 0, []uint32{50}, nil, 150, 150},
		{"grant after spending", 100, 100, []uint32{100}, nil, 100, 200},
		{"several", 0, 0, []uint32{1, 2, 3}, nil, 6, 6},
		{"up to MaxWindow", 100, 0, []uint32{MaxWindow - 100}, nil, MaxWindow, MaxWindow},
		{"one past MaxWindow", 100, 0, []uint32{MaxWindow - 99}, ErrWindowOverflow, 100, 100},
		{"MaxUint32 delta", 0, 0, []uint32{^uint32(0)}, ErrWindowOverflow, 0, 0},
		{"zero at MaxWindow", MaxWindow, 0, []uint32{0}, nil, MaxWindow, MaxWindow},
		{"one at MaxWindow", MaxWindow, 0, []uint32{1}, ErrWindowOverflow, MaxWindow, MaxWindow},
		// Credit, not the offset, is bounded: spent bytes make room.
		{"offset beyond MaxWindow", MaxWindow, MaxWindow, []uint32{MaxWindow, 1}, ErrWindowOverflow, MaxWindow, 2 * MaxWindow},
		{"refill after spending at MaxWindow", MaxWindow, 10, []uint32{10}, nil, MaxWindow, MaxWindow + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewSendWindow(tt.initial)
			w.Take(tt.take)
			var err error
			for _, d := range tt.deltas {
				err = w.Add(d)
			}
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Add error %v, want %v", err, tt.wantErr)
			}
			if w.Available() != tt.wantAvail || w.Limit() != tt.wantLimit || w.Sent() != uint64(tt.take) {
				t.Errorf("Available %d Limit %d Sent %d, want %d %d %d",
					w.Available(), w.Limit(), w.Sent(), tt.wantAvail, tt.wantLimit, tt.take)
			}
		})
	}
}
