package interop_test

// This file is self-contained (standard library and braid only), so it
// can be copied as it is into a package of its own.

import (
	"fmt"
	"log"
	"net"
	"net/rpc"

	"github.com/braidmux/braid/session"
)

// Calc is a net/rpc service.
type Calc struct{}

// Operands are Calc's arguments.
type Operands struct{ A, B int }

// Multiply sets *product to A × B.
func (Calc) Multiply(args Operands, product *int) error {
	*product = args.A * args.B
	return nil
}

// net/rpc over braid: the server serves each stream of a session as one
// RPC connection; the client opens a stream and hands it to rpc.NewClient.
func Example_netRPC() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	// Server: one braid session per TCP connection, one RPC connection per stream.
	srv := rpc.NewServer()
	if err := srv.Register(Calc{}); err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				sess, err := session.Server(conn, nil)
				if err != nil {
					return
				}
				for {
					st, err := sess.Accept()
					if err != nil {
						return
					}
					go srv.ServeConn(st)
				}
			}()
		}
	}()

	// Client.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	sess, err := session.Client(conn, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	st, err := sess.Open()
	if err != nil {
		log.Fatal(err)
	}
	client := rpc.NewClient(st)
	defer client.Close()
	var product int
	if err := client.Call("Calc.Multiply", Operands{A: 6, B: 7}, &product); err != nil {
		log.Fatal(err)
	}
	fmt.Println("6 × 7 =", product)
	// Output: 6 × 7 = 42
}
