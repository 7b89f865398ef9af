package linkemu

import (
	"testing"
	"time"
)

func TestParamsDefaults(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want params
	}{
		{Config{}, params{capacity: UnlimitedQueue, chunk: maxChunk, sockBuf: DefaultSocketBuffer}},
		{
			// 1 Gbit/s, 50 ms: 3.125 MB in the pipe + one full BDP of queue.
			Config{RTT: 50 * time.Millisecond, Rate: 125_000_000},
			params{delay: 25 * time.Millisecond, rate: 125_000_000, capacity: 3_125_000 + 6_250_000, chunk: maxChunk, sockBuf: DefaultSocketBuffer},
		},
		{
			// 100 Mbit/s, 10 ms: the BDP (125 kB) is below MinQueue; chunks
			// of 1 ms of Rate.
			Config{RTT: 10 * time.Millisecond, Rate: 12_500_000},
			params{delay: 5 * time.Millisecond, rate: 12_500_000, capacity: 62_500 + MinQueue, chunk: 12_500, sockBuf: DefaultSocketBuffer},
		},
		{
			Config{RTT: 20 * time.Millisecond, Rate: 1_000_000, Queue: 5000, SocketBuffer: -1},
			params{delay: 10 * time.Millisecond, rate: 1_000_000, capacity: 10_000 + 5000, chunk: minChunk},
		},
		{
			Config{Queue: 1, SocketBuffer: 4096},
			params{capacity: 1, chunk: maxChunk, sockBuf: 4096},
		},
	} {
		got, err := tc.cfg.params()
		if err != nil {
			t.Errorf("%+v: %v", tc.cfg, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%+v:\n got %+v\nwant %+v", tc.cfg, got, tc.want)
		}
	}
}
