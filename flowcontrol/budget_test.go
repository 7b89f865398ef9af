package flowcontrol

import "testing"

func TestBudgetZeroValue(t *testing.T) {
	var b Budget
	if b.Reserve(1) {
		t.Fatal("zero Budget reserved 1 byte")
	}
	if !b.Reserve(0) {
		t.Fatal("zero Budget refused 0 bytes")
	}
	if b.Used() != 0 || b.Limit() != 0 || b.Available() != 0 {
		t.Fatalf("Used %d Limit %d Available %d", b.Used(), b.Limit(), b.Available())
	}
}

func TestBudget(t *testing.T) {
	type op struct {
		reserve int64 // > 0 or 0 with release == 0: Reserve
		release int64 // > 0: Release
		want    bool  // Reserve's result
	}
	tests := []struct {
		name     string
		limit    int64
		ops      []op
		wantUsed int64
	}{
		{"reserve part", 100, []op{{reserve: 40, want: true}}, 40},
		{"reserve exact", 100, []op{{reserve: 100, want: true}}, 100},
		{"all or nothing", 100, []op{{reserve: 60, want: true}, {reserve: 41, want: false}}, 60},
		{"fill exactly", 100, []op{{reserve: 60, want: true}, {reserve: 40, want: true}, {reserve: 1, want: false}}, 100},
		{"release makes room", 100, []op{{reserve: 100, want: true}, {release: 30}, {reserve: 30, want: true}}, 100},
		{"release all", 100, []op{{reserve: 70, want: true}, {release: 70}}, 0},
		{"zero reserve when full", 10, []op{{reserve: 10, want: true}, {reserve: 0, want: true}}, 10},
		{"beyond limit", 10, []op{{reserve: 11, want: false}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.limit)
			for i, o := range tt.ops {
				if o.release > 0 {
					b.Release(o.release)
					continue
				}
				if got := b.Reserve(o.reserve); got != o.want {
					t.Fatalf("op %d: Reserve(%d) = %v, want %v", i, o.reserve, got, o.want)
				}
			}
			if b.Used() != tt.wantUsed || b.Limit() != tt.limit || b.Available() != tt.limit-tt.wantUsed {
				t.Errorf("Used %d Limit %d Available %d, want used %d of %d", b.Used(), b.Limit(), b.Available(), tt.wantUsed, tt.limit)
			}
		})
	}
}

func TestBudgetPanics(t *testing.T) {
	mustPanic(t, "NewBudget(-1)", func() { NewBudget(-1) })
	b := NewBudget(100)
	mustPanic(t, "Reserve(-1)", func() { b.Reserve(-1) })
	b.Reserve(10)
	mustPanic(t, "Release more than reserved", func() { b.Release(11) })
	mustPanic(t, "Release(-1)", func() { b.Release(-1) })
	if b.Used() != 10 {
		t.Fatalf("failed calls changed Used to %d", b.Used())
	}
	b.Release(10)
	mustPanic(t, "Release twice", func() { b.Release(10) })
}
