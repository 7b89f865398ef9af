package session

import (
	"fmt"
	"hash/crc32"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dumpSession describes a session's counters, for a test that found it
// stuck.
func dumpSession(name string, s *Session) string {
	return fmt.Sprintf("%s: %+v, err %v\n", name, s.Stats(), s.Err())
}

// TestConcurrentBulkNoStall moves data over many streams at once, in
// rounds, with reads of several sizes (smaller and larger than a frame,
// so both the direct-read and the buffered paths run), checking every
// byte, and fails with the sessions' state if progress stops for 5 s.
func TestConcurrentBulkNoStall(t *testing.T) {
	streams, per, rounds := 32, 1<<20, 4
	if testing.Short() || raceEnabled {
		streams, per, rounds = 16, 256<<10, 3
	}
	for round := range rounds {
		c, s := sessionPair(t, nil, nil)
		var progress atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 2*streams)
		for i := range streams {
			w := open(t, c)
			r := accept(t, s)
			data := pattern(uint64(round*1000+i), per)
			wg.Add(2)
			go func() {
				defer wg.Done()
				for off := 0; off < per; {
					k, err := w.Write(data[off:min(off+32<<10+i*977, per)])
					if err != nil {
						errs <- err
						return
					}
					off += k
					progress.Add(int64(k))
				}
				w.CloseWrite()
			}()
			go func() {
				defer wg.Done()
				h := crc32.NewIEEE()
				buf := make([]byte, []int{1000, 4 << 10, 32 << 10, 100 << 10}[i%4])
				got := 0
				for got < per {
					k, err := r.Read(buf)
					h.Write(buf[:k])
					got += k
					progress.Add(int64(k))
					if err != nil {
						errs <- fmt.Errorf("stream %d read after %d bytes: %w", r.ID(), got, err)
						return
					}
				}
				if h.Sum32() != crc32.ChecksumIEEE(data) {
					errs <- fmt.Errorf("stream %d: checksum mismatch", r.ID())
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		last := int64(-1)
	wait:
		for {
			select {
			case <-done:
				break wait
			case err := <-errs:
				t.Fatal(err)
			case <-time.After(5 * time.Second):
				if p := progress.Load(); p == last {
					t.Fatalf("round %d: no progress for 5 s\n%s%s", round, dumpSession("client", c), dumpSession("server", s))
				} else {
					last = p
				}
			}
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		c.Close()
		s.Close()
	}
}
