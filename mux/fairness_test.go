package mux

import (
	"fmt"
	"math"
	"testing"
)

// shares runs many Fills over len(weights) streams with an endless
// backlog and unlimited stream credit, and returns the payload bytes each
// stream got. Every Fill gets sessionPerFill session credit.
func shares(t *testing.T, weights []uint32, quantum, maxPayload int, sessionPerFill int64, maxBatch, fills int) []int64 {
	t.Helper()
	s := newSched(quantum)
	backlog := make([]byte, 1<<20) // aliased by every stream, never written
	sts := make([]*tStream, len(weights))
	idx := map[*tStream]int{}
	for i, w := range weights {
		sts[i] = &tStream{ID: uint32(2*i + 1), Weight: w}
		idx[sts[i]] = i
		grant(t, s, sts[i], MaxCredit)
		s.Enqueue(sts[i], backlog, false)
	}
	got := make([]int64, len(weights))
	var b tBatch
	for range fills {
		used := s.Fill(&b, maxPayload, sessionPerFill, maxBatch)
		if used > sessionPerFill {
			t.Fatalf("used %d of %d session credit", used, sessionPerFill)
		}
		var sum int64
		for _, e := range b.Sent() {
			if e.N > maxPayload {
				t.Fatalf("frame of %d bytes, max payload %d", e.N, maxPayload)
			}
			got[idx[e.Stream]] += int64(e.N)
			grant(t, s, e.Stream, uint32(e.N)) // the peer's WINDOW_UPDATE
			sum += int64(e.N)
			if !e.Stream.Queued() {
				s.Enqueue(e.Stream, backlog, false)
			}
		}
		if sum != used {
			t.Fatalf("Sent adds up to %d, Fill returned %d", sum, used)
		}
		b.Reset()
	}
	return got
}

// checkShares fails unless every stream's bytes are within tol (relative)
// of its weight's proportion of the total.
func checkShares(t *testing.T, weights []uint32, got []int64, tol float64) {
	t.Helper()
	var total int64
	var wsum float64
	for i, w := range weights {
		total += got[i]
		wsum += float64(max(w, 1))
	}
	if total == 0 {
		t.Fatal("nothing sent")
	}
	worst := 0.0
	for i, w := range weights {
		want := float64(total) * float64(max(w, 1)) / wsum
		dev := math.Abs(float64(got[i])-want) / want
		worst = max(worst, dev)
		if dev > tol {
			t.Errorf("stream %d (weight %d): %d bytes, want %.0f (off by %.2f%%)", i, w, got[i], want, 100*dev)
		}
	}
	t.Logf("%d streams, %d bytes, worst deviation %.3f%%", len(weights), total, 100*worst)
}

func TestFairnessEqualWeights(t *testing.T) {
	for _, n := range []int{2, 10, 100} {
		for _, cfg := range []struct {
			name       string
			quantum    int
			maxPayload int
			session    int64
			maxBatch   int
		}{
			{"aligned", 16 << 10, 16 << 10, math.MaxInt64, 64 << 10},
			{"misaligned max payload", 16 << 10, 16<<10 - frameOverhead, math.MaxInt64, 64 << 10},
			{"one frame per batch", 16 << 10, 16 << 10, math.MaxInt64, 1},
			{"session credit bound", 16 << 10, 16 << 10, 10007, 1 << 20},
			{"small quantum", 1000, 16 << 10, math.MaxInt64, 64 << 10},
		} {
			t.Run(fmt.Sprintf("%d streams/%s", n, cfg.name), func(t *testing.T) {
				weights := make([]uint32, n)
				// Enough fills for each stream to get about 100 turns.
				perFill := float64(cfg.maxBatch)
				if cfg.session < math.MaxInt64 {
					perFill = float64(cfg.session)
				}
				perFill = max(perFill, float64(cfg.maxPayload))
				fills := int(100 * float64(n) * float64(max(cfg.quantum, cfg.maxPayload)) / perFill)
				got := shares(t, weights, cfg.quantum, cfg.maxPayload, cfg.session, cfg.maxBatch, fills)
				checkShares(t, weights, got, 0.05)
			})
		}
	}
}

func TestFairnessWeighted(t *testing.T) {
	for _, weights := range [][]uint32{
		{1, 2, 4},
		{4, 1, 2, 0},          // 0 counts as 1
		{1, 2, 4, 1, 2, 4, 8}, // repeated classes
	} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			var wsum int
			for _, w := range weights {
				wsum += int(max(w, 1))
			}
			const quantum, maxPayload = 16 << 10, 16 << 10
			fills := 100 * wsum * quantum / (64 << 10)
			got := shares(t, weights, quantum, maxPayload, math.MaxInt64, 64<<10, fills)
			checkShares(t, weights, got, 0.05)
		})
	}
	// A quantum below the max payload, and the session credit as the
	// bottleneck (turns are cut short by Fill and resume at the next).
	t.Run("session credit bound", func(t *testing.T) {
		weights := []uint32{1, 2, 4}
		const quantum, session = 4096, 20011
		fills := 300 * 7 * quantum / session // about 300 rounds
		got := shares(t, weights, quantum, 16<<10, session, 1<<20, fills)
		checkShares(t, weights, got, 0.05)
	})
}

// frameOverhead mimics a session that cuts payloads to a frame size
// minus the DATA header, so quantum and max payload do not line up.
const frameOverhead = 17

func TestNoRuntFrames(t *testing.T) {
	// A quantum that is not a multiple of the max payload must not split
	// frames at turn boundaries.
	const maxPayload = 16<<10 - frameOverhead
	s := newSched(16 << 10)
	sts := make([]*tStream, 5)
	for i := range sts {
		sts[i] = &tStream{ID: uint32(2*i + 1)}
		grant(t, s, sts[i], MaxCredit)
		s.Enqueue(sts[i], make([]byte, 40*maxPayload), true)
	}
	var b tBatch
	frames := 0
	for s.HasWork(1 << 40) {
		s.Fill(&b, maxPayload, 1<<40, 256<<10)
		for _, e := range b.Sent() {
			if e.N != maxPayload {
				t.Fatalf("frame %d of stream %d has %d bytes, want %d", frames, e.Stream.ID, e.N, maxPayload)
			}
			frames++
		}
		b.Reset()
	}
	if frames != 5*40 {
		t.Fatalf("%d frames, want %d", frames, 5*40)
	}
}
