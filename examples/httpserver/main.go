// Command httpserver serves HTTP to many clients over braid: one session
// per client connection, and one http.Server.Serve per session (a
// session is a net.Listener whose connections are the client's streams).
// Three clients each send requests over their own session, several at
// once; every request is a stream.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"

	"github.com/braidmux/braid/session"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Query().Get("name"))
	})
	go serve(ln, handler)

	var wg sync.WaitGroup
	for _, name := range []string{"ada", "grace", "alan"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := client(ln.Addr().String(), name); err != nil {
				log.Fatal(err)
			}
		}()
	}
	wg.Wait()
}

// serve accepts client connections and serves HTTP on each one's session.
func serve(ln net.Listener, handler http.Handler) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		// session.Server waits for the client's handshake: call it in the
		// connection's goroutine so one slow client cannot stall the loop.
		go func() {
			sess, err := session.Server(conn, nil)
			if err != nil {
				log.Print(err)
				return
			}
			srv := &http.Server{Handler: handler}
			srv.Serve(sess) // returns when the session ends
		}()
	}
}

// client opens one session and sends three requests over it at once,
// each on a stream of its own.
func client(addr, name string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	sess, err := session.Client(conn, nil)
	if err != nil {
		return err
	}
	defer sess.Close()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return sess.OpenStream(ctx)
		},
	}}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get("http://braid/?name=" + name)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			fmt.Printf("%s #%d: %s\n", name, i+1, body)
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
