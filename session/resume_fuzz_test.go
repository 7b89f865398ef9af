package session_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/braidmux/braid/frame"
	"google.golang.org/protobuf/encoding/protowire"
)

// rsLiveMarker in a fuzz input stands for the live session's ID (16
// bytes, like the ID): FuzzResumeHandshake puts the real ID in its place,
// so inputs can name the session without knowing its random ID.
var rsLiveMarker = []byte("LIVE-SESSION-ID!")

// rsFuzzHandshakeTimeout is the Listener's HandshakeTimeout in the fuzz
// target (fake time: it costs nothing to wait for).
const rsFuzzHandshakeTimeout = 2 * time.Second

// FuzzResumeHandshake feeds the bytes of a new connection to a Listener
// that holds one live resumable session. Whatever they are, the server
// must not panic; it must answer or close the connection within its
// HandshakeTimeout (an answer that leaves it open can only be a new
// session's HELLO); it must never accept a resume (nobody but the client
// holds the secret); and the live session must go on as if nothing
// happened: both sides answer a Ping, and neither counts a resume.
//
// Each input runs in its own synctest bubble (fresh Listener and session
// over net.Pipe), so timeouts take no wall time and synctest.Test fails an
// input that leaves a goroutine behind.
func FuzzResumeHandshake(f *testing.F) {
	nonce := bytes.Repeat([]byte{7}, 16)
	mac := bytes.Repeat([]byte{0x42}, 32)
	resume := func(r frame.ResumeInfo) []byte {
		return (&frame.Frame{Type: frame.Resume, HasResume: true, Resume: r}).Append(nil)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	req := resume(frame.ResumeInfo{Step: frame.ResumeRequest, SessionID: rsLiveMarker, Nonce: nonce})
	proof := resume(frame.ResumeInfo{Step: frame.ResumeProof, Received: 0, MAC: mac})
	hello := (&frame.Frame{Type: frame.Hello, HasSettings: true, Settings: frame.Settings{
		Magic: []byte(frame.Magic), Version: frame.Version, InitialWindow: 64 << 10, MaxFrameSize: 16 << 10,
		SessionWindow: 1 << 20, Role: frame.RoleClient, ResumeKey: bytes.Repeat([]byte{1}, 32),
	}}).Append(nil)
	seeds := [][]byte{
		nil,
		req,             // a valid REQUEST for the live session, then silence
		cat(req, proof), // ... and a proof with a wrong MAC
		cat(req, resume(frame.ResumeInfo{Step: frame.ResumeProof})),                              // no MAC
		cat(req, resume(frame.ResumeInfo{Step: frame.ResumeProof, Received: 1 << 63, MAC: mac})), // huge received
		cat(req, resume(frame.ResumeInfo{Step: frame.ResumeProof, MAC: bytes.Repeat(mac, 2)})),   // 64-byte MAC
		cat(req, req),          // REQUEST instead of PROOF
		cat(req, proof, proof), // a second proof
		cat(req, (&frame.Frame{Type: frame.Ack, Received: 1}).Append(nil)),
		cat(req, (&frame.Frame{Type: frame.Ping, Opaque: 1}).Append(nil)),
		proof, // PROOF first
		resume(frame.ResumeInfo{Step: frame.ResumeChallenge, Nonce: nonce}),
		resume(frame.ResumeInfo{Step: frame.ResumeAccepted, SessionID: rsLiveMarker, MAC: mac}),
		resume(frame.ResumeInfo{Step: frame.ResumeRefused}),
		resume(frame.ResumeInfo{Step: 0, SessionID: rsLiveMarker, Nonce: nonce}),
		resume(frame.ResumeInfo{Step: 99, SessionID: rsLiveMarker, Nonce: nonce}),
		(&frame.Frame{Type: frame.Resume}).Append(nil),                                                            // RESUME without its body
		resume(frame.ResumeInfo{Step: frame.ResumeRequest, SessionID: rsLiveMarker, Nonce: nonce[:4]}),            // short nonce
		resume(frame.ResumeInfo{Step: frame.ResumeRequest, SessionID: bytes.Repeat([]byte{9}, 16), Nonce: nonce}), // unknown session
		resume(frame.ResumeInfo{Step: frame.ResumeRequest, SessionID: bytes.Repeat([]byte{9}, 65), Nonce: nonce}), // over MaxResumeField
		req[:1],
		req[:len(req)/2],
		req[:len(req)-1],
		cat(req, proof[:len(proof)-3]),
		protowire.AppendVarint(nil, 1<<31), // huge length
		cat(protowire.AppendVarint(nil, frame.MaxMaxFrameSize), []byte{8, 7}), // largest length, little body
		bytes.Repeat([]byte{0xff}, 11),                                        // a varint that never ends
		[]byte("GET / HTTP/1.1\r\nHost: braid\r\n\r\n"),
		hello,                          // a new session
		cat(hello, req),                // ... then a REQUEST on it
		cat(hello, []byte{0xff, 0xff}), // ... then garbage
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		synctest.Test(t, func(t *testing.T) { rsFuzzResume(t, in) })
	})
}

func rsFuzzResume(t *testing.T, in []byte) {
	cfg := rsSmallConfig()
	cfg.HandshakeTimeout = rsFuzzHandshakeTimeout
	x := rsStartPipe(t, cfg, cfg)
	defer x.close()
	in = bytes.ReplaceAll(in, rsLiveMarker, x.link.sessionID(t))

	conn, _, err := x.ln.connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		conn.Write(in) // fails if the server hangs up first
	}()
	start := time.Now()
	conn.SetReadDeadline(start.Add(rsFuzzHandshakeTimeout + 100*time.Millisecond))
	rd := frame.NewReader(conn, frame.MaxMaxFrameSize)
	var first *frame.Frame
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && (first == nil || first.Type != frame.Hello) {
				t.Fatalf("the server neither answered nor closed within HandshakeTimeout (%v); it sent %v", rsFuzzHandshakeTimeout, first)
			}
			break
		}
		if f.Type == frame.Resume && f.HasResume && f.Resume.Step == frame.ResumeAccepted {
			t.Fatalf("the server accepted a resume from a peer without the secret: %v", f)
		}
		if first == nil {
			first = &frame.Frame{Type: f.Type}
		}
	}
	conn.Close()
	<-wrote

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := x.cs.Ping(ctx); err != nil {
		t.Fatalf("the live session's client: Ping: %v", err)
	}
	if _, err := x.ss.Ping(ctx); err != nil {
		t.Fatalf("the live session's server: Ping: %v", err)
	}
	if c, s := x.cs.Stats().Resumes, x.ss.Stats().Resumes; c != 0 || s != 0 {
		t.Fatalf("the live session counts resumes: client %d, server %d; want 0", c, s)
	}
	if x.cs.IsClosed() || x.ss.IsClosed() {
		t.Fatalf("the live session ended: client %v, server %v", x.cs.Err(), x.ss.Err())
	}
}
