package interop_test

import (
	"errors"
	"net/rpc"
	"sync"
	"testing"
	"time"

	"github.com/braidmux/braid/session"
)

// Arith is the net/rpc service of the tests and examples.
type Arith struct{}

// Args are Arith's arguments.
type Args struct{ A, B int }

// Multiply sets *reply to A×B.
func (Arith) Multiply(args Args, reply *int) error {
	*reply = args.A * args.B
	return nil
}

// Divide sets *reply to A/B; dividing by zero is an error.
func (Arith) Divide(args Args, reply *int) error {
	if args.B == 0 {
		return errors.New("divide by zero")
	}
	*reply = args.A / args.B
	return nil
}

// rpcOverBraid serves Arith with rpc.ServeConn on every stream the server
// session accepts.
func rpcOverBraid(t *testing.T) *session.Session {
	t.Helper()
	cs, ss := braidSessions(t)
	srv := rpc.NewServer()
	if err := srv.Register(Arith{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			st, err := ss.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(st)
		}
	}()
	return cs
}

func TestNetRPCConcurrentCalls(t *testing.T) {
	cs := rpcOverBraid(t)
	const clients, callsEach = 8, 100
	var wg sync.WaitGroup
	for c := range clients {
		st, err := cs.Open()
		if err != nil {
			t.Fatal(err)
		}
		client := rpc.NewClient(st)
		defer client.Close()
		for i := range callsEach {
			wg.Go(func() {
				var got int
				call := client.Go("Arith.Multiply", Args{c, i}, &got, nil)
				select {
				case <-call.Done:
				case <-time.After(30 * time.Second):
					t.Errorf("client %d call %d: no reply in 30 s", c, i)
					return
				}
				if call.Error != nil || got != c*i {
					t.Errorf("client %d: Multiply(%d, %d) = %d, %v", c, c, i, got, call.Error)
				}
			})
		}
	}
	wg.Wait()
	if n := cs.Stats().StreamsOpened; n != clients {
		t.Errorf("%d streams opened for %d clients", n, clients)
	}
}

func TestNetRPCErrorsAndClose(t *testing.T) {
	cs := rpcOverBraid(t)
	st, err := cs.Open()
	if err != nil {
		t.Fatal(err)
	}
	client := rpc.NewClient(st)
	var got int
	err = client.Call("Arith.Divide", Args{1, 0}, &got)
	var se rpc.ServerError
	if !errors.As(err, &se) || string(se) != "divide by zero" {
		t.Errorf("Divide by zero = %v (%T); want rpc.ServerError(\"divide by zero\")", err, err)
	}
	if err := client.Call("Arith.Divide", Args{9, 3}, &got); err != nil || got != 3 {
		t.Errorf("Divide(9, 3) = %d, %v after a server error", got, err)
	}
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Call("Arith.Multiply", Args{2, 3}, &got); !errors.Is(err, rpc.ErrShutdown) {
		t.Errorf("Call after Close = %v; want rpc.ErrShutdown", err)
	}
	// The server's ServeConn ended with the stream: both sides forget it.
	if !poll(2*time.Second, func() bool { return cs.NumStreams() == 0 }) {
		t.Errorf("client session still has %d streams after the rpc client closed", cs.NumStreams())
	}
}
