package flowcontrol

import (
	"testing"
	"time"
)

// simConfig describes one auto-tuning simulation: a sender with unlimited
// data, a link of fixed rate and round-trip time, and a receiving
// application that reads at appRate (0: instantly).
type simConfig struct {
	linkRate   float64 // bytes per second, each direction
	rtt        time.Duration
	appRate    float64 // bytes per second the application reads; 0 = instantly
	initial    uint32
	max        uint32
	budget     int64
	duration   time.Duration
	windowGoal uint32 // record when the window first reaches this
}

type simResult struct {
	window      uint32        // final window
	reachedGoal time.Duration // when the window first reached windowGoal; -1 if never
	lastSecond  float64       // bytes/s delivered to the application in the final second
	delivered   uint64
	budgetUsed  int64
	growths     []string // "t=… window=…", for the log
}

type simPacket struct {
	arrive time.Duration
	n      uint64
}

// simulate runs the link in discrete steps of 100µs. In each step:
// WINDOW_UPDATEs that have crossed the link reach the sender; data that
// has crossed reaches the receiver, which the application then reads (all
// of it, or up to its rate); the sender puts as much on the link as its
// credit and the link rate allow. Each direction delays by rtt/2, and the
// sender never exceeds the link rate, so the link never queues.
func simulate(t *testing.T, c simConfig) simResult {
	t.Helper()
	const dt = 100 * time.Microsecond
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	oneWay := c.rtt / 2
	budget := NewBudget(c.budget)
	send := NewSendWindow(c.initial)
	recv := NewRecvWindow(c.initial, c.max, start)
	var data, updates []simPacket
	var linkCarry, appCarry float64
	res := simResult{reachedGoal: -1}
	var deliveredAtLastSecond uint64

	for now := time.Duration(0); now < c.duration; now += dt {
		clock := start.Add(now)
		if now == c.duration-time.Second {
			deliveredAtLastSecond = recv.Consumed()
		}
		for len(updates) > 0 && updates[0].arrive <= now {
			if err := send.Add(uint32(updates[0].n)); err != nil {
				t.Fatalf("t=%v: Add: %v", now, err)
			}
			updates = updates[1:]
		}
		for len(data) > 0 && data[0].arrive <= now {
			if err := recv.Receive(int(data[0].n)); err != nil {
				t.Fatalf("t=%v: Receive: %v", now, err)
			}
			data = data[1:]
		}
		n := recv.Buffered()
		if c.appRate > 0 {
			appCarry += c.appRate * dt.Seconds()
			n = min(n, int(appCarry))
			appCarry -= float64(n)
			if recv.Buffered() == 0 {
				appCarry = min(appCarry, c.appRate*dt.Seconds()) // no saving up while idle
			}
		}
		old := recv.Window()
		if d := recv.Consume(n, clock, c.rtt, &budget); d > 0 {
			updates = append(updates, simPacket{now + oneWay, uint64(d)})
		}
		if w := recv.Window(); w != old {
			res.growths = append(res.growths, (now.Round(time.Millisecond)).String()+":"+sizeString(w))
			if w >= c.windowGoal && res.reachedGoal < 0 {
				res.reachedGoal = now
			}
		}
		linkCarry += c.linkRate * dt.Seconds()
		m := min(send.Available(), int64(linkCarry))
		if m > 0 {
			send.Take(int(m))
			data = append(data, simPacket{now + oneWay, uint64(m)})
		}
		linkCarry -= float64(m)
		linkCarry = min(linkCarry, c.linkRate*dt.Seconds()) // an idle link does not save up capacity
	}
	res.window = recv.Window()
	res.delivered = recv.Consumed()
	res.lastSecond = float64(recv.Consumed() - deliveredAtLastSecond)
	res.budgetUsed = budget.Used()
	return res
}

func sizeString(n uint32) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(n>>10) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

const (
	gbit = 1e9 / 8 // bytes per second
	mbit = 1e6 / 8
)

// TestAutoTuneFastLink: on a 1 Gbit/s, 50 ms link the 256 KiB initial
// window allows only 256 KiB per RTT (~5 MB/s); the window must grow past
// the bandwidth-delay product (6.25 MB) within a few seconds and the
// throughput approach the link rate.
func TestAutoTuneFastLink(t *testing.T) {
	const bdp = gbit * 0.050
	for _, tc := range []struct {
		name       string
		max        uint32
		budget     int64
		wantWindow uint32
		minRate    float64 // fraction of the link rate in the last second
	}{
		{"max 16MiB", 16 << 20, 64 << 20, 16 << 20, 0.99},
		// Growth stops at 8 MiB when the budget cannot pay for 16 MiB;
		// 8 MiB still exceeds the BDP.
		{"budget caps at 8MiB", 16 << 20, 8<<20 - 256<<10, 8 << 20, 0.95},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := simulate(t, simConfig{
				linkRate: gbit, rtt: 50 * time.Millisecond,
				initial: 256 << 10, max: tc.max, budget: tc.budget,
				duration: 5 * time.Second, windowGoal: uint32(bdp),
			})
			t.Logf("window growth (time:size): %v", res.growths)
			t.Logf("BDP %.2f MB reached at %v; final window %s; average %.1f MB/s; last second %.1f MB/s (link %.1f MB/s, %.1f%%); budget used %d",
				bdp/1e6, res.reachedGoal, sizeString(res.window), float64(res.delivered)/5e6, res.lastSecond/1e6, gbit/1e6, 100*res.lastSecond/gbit, res.budgetUsed)
			if res.reachedGoal < 0 || res.reachedGoal > 2*time.Second {
				t.Errorf("window reached the BDP at %v, want within 2s", res.reachedGoal)
			}
			if res.window != tc.wantWindow {
				t.Errorf("final window %d, want %d", res.window, tc.wantWindow)
			}
			if res.lastSecond < tc.minRate*gbit {
				t.Errorf("last-second throughput %.1f MB/s, want >= %.0f%% of %.1f MB/s", res.lastSecond/1e6, 100*tc.minRate, gbit/1e6)
			}
			if res.budgetUsed != int64(res.window)-256<<10 {
				t.Errorf("budget used %d, want the growth %d", res.budgetUsed, int64(res.window)-256<<10)
			}
		})
	}
}

// TestAutoTuneNotWindowLimited: when the link or the reader, not the
// window, limits throughput, the window must stay at its initial size and
// take nothing from the budget.
func TestAutoTuneNotWindowLimited(t *testing.T) {
	for _, tc := range []struct {
		name     string
		linkRate float64
		appRate  float64
		wantRate float64 // expected throughput, bytes/s
	}{
		{"1Mbit link", 1 * mbit, 0, 1 * mbit},
		// 1.25 MB/s is just below window/(TuneRTTs*rtt) = 1.31 MB/s, the
		// highest rate at which a 256 KiB window on a 50 ms link stays put.
		{"10Mbit link", 10 * mbit, 0, 10 * mbit},
		{"slow reader on 1Gbit link", gbit, 1e6, 1e6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := simulate(t, simConfig{
				linkRate: tc.linkRate, rtt: 50 * time.Millisecond, appRate: tc.appRate,
				initial: 256 << 10, max: 16 << 20, budget: 64 << 20,
				duration: 10 * time.Second, windowGoal: 512 << 10,
			})
			t.Logf("final window %s; last second %.3f MB/s (expected %.3f MB/s); growth %v",
				sizeString(res.window), res.lastSecond/1e6, tc.wantRate/1e6, res.growths)
			if res.window != 256<<10 || res.budgetUsed != 0 {
				t.Errorf("window grew to %d (budget used %d) though not window-limited", res.window, res.budgetUsed)
			}
			if res.lastSecond < 0.95*tc.wantRate || res.lastSecond > 1.01*tc.wantRate {
				t.Errorf("throughput %.3f MB/s, want about %.3f MB/s", res.lastSecond/1e6, tc.wantRate/1e6)
			}
		})
	}
}

// TestAutoTuneNoBudget is the control for TestAutoTuneFastLink: without a
// budget to grow into, the 256 KiB window limits a 1 Gbit/s, 50 ms link to
// at most one window per RTT (5.24 MB/s), so the simulation is
// window-limited. Bytes consumed after the last update of a burst (under a
// quarter window) wait for the next burst, so expect 3/4 to all of it.
func TestAutoTuneNoBudget(t *testing.T) {
	res := simulate(t, simConfig{
		linkRate: gbit, rtt: 50 * time.Millisecond,
		initial: 256 << 10, max: 16 << 20, budget: 0,
		duration: 5 * time.Second, windowGoal: 512 << 10,
	})
	want := float64(256<<10) / 0.050
	t.Logf("final window %s; last second %.2f MB/s (one window per RTT: %.2f MB/s)", sizeString(res.window), res.lastSecond/1e6, want/1e6)
	if res.window != 256<<10 {
		t.Fatalf("window grew to %d with no budget", res.window)
	}
	if res.lastSecond < 0.75*want || res.lastSecond > want {
		t.Errorf("throughput %.2f MB/s, want 3/4 to all of %.2f MB/s", res.lastSecond/1e6, want/1e6)
	}
}
