package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/braidmux/braid/session"
)

// pipe returns a connected client and server session over net.Pipe.
func pipe() (client, server *session.Session) {
	c1, c2 := net.Pipe()
	done := make(chan *session.Session)
	go func() {
		s, err := session.Server(c2, nil)
		if err != nil {
			panic(err)
		}
		done <- s
	}()
	c, err := session.Client(c1, nil)
	if err != nil {
		panic(err)
	}
	return c, <-done
}

// A client and a server session over one connection (here net.Pipe; a
// TCP or TLS connection works the same way). The client opens a stream,
// the server echoes it back in upper case.
func Example() {
	c1, c2 := net.Pipe()

	serverDone := make(chan struct{})
	go func() {
		defer close(serverDone)
		srv, err := session.Server(c2, nil)
		if err != nil {
			fmt.Println("server:", err)
			return
		}
		defer srv.Close()
		st, err := srv.AcceptStream(context.Background())
		if err != nil {
			fmt.Println("accept:", err)
			return
		}
		msg, _ := io.ReadAll(st) // until the client's CloseWrite
		st.Write([]byte(strings.ToUpper(string(msg))))
		st.Close()
		// Wait for the client to finish before closing the session.
		<-srv.CloseChan()
	}()

	cli, err := session.Client(c1, nil)
	if err != nil {
		fmt.Println("client:", err)
		return
	}
	st, err := cli.OpenStream(context.Background())
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	st.Write([]byte("hello, braid"))
	st.CloseWrite() // the server reads io.EOF after our bytes
	reply, _ := io.ReadAll(st)
	fmt.Printf("%s\n", reply)
	st.Close()
	cli.Close()
	<-serverDone
	// Output: HELLO, BRAID
}

// Serving net/http over a session: the *Session is the server's
// net.Listener, and the client's http.Transport dials by opening streams.
// Every HTTP connection is one stream; all share one TCP connection.
func Example_http() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()

	// Server: accept one TCP connection, run a braid session on it, and
	// serve HTTP on the session's streams.
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s over braid", r.URL.Path)
	})}
	served := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		sess, err := session.Server(conn, nil)
		if err != nil {
			served <- err
			return
		}
		served <- httpSrv.Serve(sess) // returns when the session closes
	}()

	// Client: one TCP connection, one session, streams as HTTP conns.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	cli, err := session.Client(conn, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return cli.OpenStream(ctx)
		},
	}
	hc := &http.Client{Transport: tr}
	for _, path := range []string{"/a", "/b"} {
		resp, err := hc.Get("http://braid" + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Status, string(body))
	}

	tr.CloseIdleConnections()
	cli.Close()
	httpSrv.Close()
	<-served
	// Output:
	// 200 OK hello from /a over braid
	// 200 OK hello from /b over braid
}

// Ping measures the round-trip time to the peer.
func ExampleSession_Ping() {
	cli, srv := pipe()
	defer srv.Close()
	defer cli.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rtt, err := cli.Ping(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("peer answered:", rtt > 0)
	// Output: peer answered: true
}

// GoAway shuts a session down gracefully: no new streams on either side,
// existing streams run to completion, then the session closes by itself.
func ExampleSession_GoAway() {
	cli, srv := pipe()
	defer srv.Close()
	defer cli.Close()

	st, _ := cli.OpenStream(context.Background())
	sst, _ := srv.AcceptStream(context.Background())

	srv.GoAway()
	_, err := srv.OpenStream(context.Background())
	fmt.Println("open after GoAway:", errors.Is(err, session.ErrGoAway))

	// The existing stream still works.
	go func() {
		io.Copy(sst, sst)
		sst.Close()
	}()
	st.Write([]byte("still here"))
	st.CloseWrite()
	b, _ := io.ReadAll(st)
	fmt.Println(string(b))
	st.Close()

	// With no streams left, both sessions end by themselves.
	<-cli.CloseChan()
	<-srv.CloseChan()
	fmt.Println("closed:", cli.IsClosed(), srv.IsClosed())
	// Output:
	// open after GoAway: true
	// still here
	// closed: true true
}

// A resumable session: the client's connection breaks in the middle of a
// stream, and the session dials again and carries on where it stopped.
// The stream sees nothing; Stats counts the resume.
func ExampleDial() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	l := session.NewListener(ln, nil)
	defer l.Close()

	conns := make(chan net.Conn, 2)
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err == nil {
			conns <- c
		}
		return c, err
	}
	cli, err := session.Dial(context.Background(), dial, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cli.Close()
	srv, err := l.Accept()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	got := make(chan string)
	go func() {
		st, err := srv.AcceptStream(context.Background())
		if err != nil {
			fmt.Println(err)
			return
		}
		b, _ := io.ReadAll(st)
		got <- string(b)
	}()
	st, _ := cli.OpenStream(context.Background())
	st.Write([]byte("before the break, "))
	(<-conns).Close() // the connection breaks
	st.Write([]byte("after it"))
	st.CloseWrite()
	fmt.Println(<-got)
	fmt.Println("resumes:", srv.Stats().Resumes)
	// Output:
	// before the break, after it
	// resumes: 1
}
