package main

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

func TestShout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go Serve(ln)

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			msg := "hello " + string(rune('a'+i))
			reply, err := Shout(ln.Addr().String(), msg)
			if err != nil {
				t.Errorf("Shout: %v", err)
			} else if want := "HELLO " + string(rune('A'+i)); reply != want {
				t.Errorf("reply %q, want %q", reply, want)
			}
		})
	}
	wg.Wait()
}

func TestErrorsAndConfig(t *testing.T) {
	cfg := yamux.DefaultConfig()
	cfg.AcceptBacklog = 0
	if err := yamux.VerifyConfig(cfg); err == nil {
		t.Error("VerifyConfig accepted a zero backlog")
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	sess, err := yamux.Client(c1, nil)
	if err != nil {
		t.Fatal(err)
	}
	sess.Close()
	if _, err := sess.OpenStream(); err != yamux.ErrSessionShutdown {
		t.Errorf("OpenStream after Close = %v, want ErrSessionShutdown", err)
	}
	select {
	case <-sess.CloseChan():
	case <-time.After(time.Second):
		t.Error("CloseChan not closed")
	}
	var ne net.Error
	if !errors.As(yamux.ErrTimeout, &ne) || !ne.Timeout() {
		t.Error("ErrTimeout is not a timeout net.Error")
	}
}
