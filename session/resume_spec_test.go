package session_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/braidmux/braid/frame"
	"github.com/braidmux/braid/session"
)

// SPEC.md §16 (Resumption) checked from the outside: a raw client that
// knows nothing of package session, only SPEC.md's text and the frame
// codec, makes a resumable session with a session.Listener, breaks its
// connection and resumes it. It derives the resume secret (§16.2), counts
// both sequences (§16.3) and computes and checks the MACs (§16.4) itself;
// if the Listener agrees with it on every byte, the Listener follows the
// text.
//
// Every read and write of a raw connection has a deadline (rspecWait), and
// so has every wait on the server's side; nothing sleeps.

// rspecWait bounds every wait of these tests.
const rspecWait = 20 * time.Second

// The labels of §16.4's MACs.
const (
	rspecClientLabel = "braid resume client proof"
	rspecServerLabel = "braid resume server proof"
)

// rspecSecret is the resume secret of a session without TLS (§16.2):
// SHA-256("braid resume secret" ‖ 0x00 ‖ shared ‖ exported ‖ context),
// where context = resume_id ‖ client's resume_key ‖ server's resume_key
// and exported is empty (no TLS).
func rspecSecret(shared, id, clientKey, serverKey []byte) []byte {
	h := sha256.New()
	h.Write([]byte("braid resume secret"))
	h.Write([]byte{0})
	h.Write(shared)
	h.Write(id)
	h.Write(clientKey)
	h.Write(serverKey)
	return h.Sum(nil)
}

// rspecMAC is §16.4's proof: HMAC-SHA256(secret, label ‖ uvarint(len(id))
// ‖ id ‖ uvarint(len(cn)) ‖ cn ‖ uvarint(len(sn)) ‖ sn ‖ uint64(received)),
// the count as 8 bytes big-endian.
func rspecMAC(secret []byte, label string, id, cn, sn []byte, received uint64) []byte {
	in := []byte(label)
	for _, b := range [][]byte{id, cn, sn} {
		in = binary.AppendUvarint(in, uint64(len(b)))
		in = append(in, b...)
	}
	in = binary.BigEndian.AppendUint64(in, received)
	m := hmac.New(sha256.New, secret)
	m.Write(in)
	return m.Sum(nil)
}

// rspecAckEvery is §16.3's ackEvery for a side whose HELLO announced
// session_window s: min(max(s/8, 4096), 1048576).
func rspecAckEvery(s uint32) uint64 {
	return min(max(uint64(s)/8, 4096), 1048576)
}

// rspecSeq returns n bytes counting up from start (mod 256), so that a
// slice of them that is duplicated, lost or out of place shows.
func rspecSeq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i*7)
	}
	return b
}

// TestResumeRawClientSpecVectors checks this file's own crypto against
// the example of SPEC.md §16.7.2, so that a disagreement with the
// Listener below cannot be this file's mistake.
func TestResumeRawClientSpecVectors(t *testing.T) {
	seq := func(from byte) []byte {
		b := make([]byte, 0, 32)
		for i := range 32 {
			b = append(b, from+byte(i))
		}
		return b
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cpriv, err := ecdh.X25519().NewPrivateKey(seq(0x00))
	if err != nil {
		t.Fatal(err)
	}
	spriv, err := ecdh.X25519().NewPrivateKey(seq(0x20))
	if err != nil {
		t.Fatal(err)
	}
	shared, err := cpriv.ECDH(spriv.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	id, cn, sn := seq(0x40)[:16], seq(0x50)[:16], seq(0x60)[:16]
	secret := rspecSecret(shared, id, cpriv.PublicKey().Bytes(), spriv.PublicKey().Bytes())
	for _, c := range []struct{ name, got, want string }{
		{"client resume_key", hex.EncodeToString(cpriv.PublicKey().Bytes()), "8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f"},
		{"server resume_key", hex.EncodeToString(spriv.PublicKey().Bytes()), "358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254"},
		{"shared secret", hex.EncodeToString(shared), "9663aa1da97e848a914a436d04163dfbb89178f107f1b5b77ed3854203382854"},
		{"resume secret", hex.EncodeToString(secret), "5c7fbd070e7858093da14ac0e9474e8d1c3010727009b0f1ffa67329c9f6ae4f"},
		{"client MAC", hex.EncodeToString(rspecMAC(secret, rspecClientLabel, id, cn, sn, 123456)), "86970460bb7bd1b54bf03a5cf58116ed46cf019a8ef84a0a78c52c6da6b944d6"},
		{"server MAC", hex.EncodeToString(rspecMAC(secret, rspecServerLabel, id, cn, sn, 1048576)), "a74f07060abe41ead9275b23d082d1fe01448f89adf19ff90dfbba2849c5f900"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, SPEC.md §16.7.2 says %s", c.name, c.got, c.want)
		}
	}
	// The PROOF frame of §16.7.2, byte for byte.
	proof := (&frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
		Step: frame.ResumeProof, Received: 123456, MAC: rspecMAC(secret, rspecClientLabel, id, cn, sn, 123456),
	}}).Append(nil)
	if want := unhex("2c 08 07 5a 28 08 03 20 c0 c4 07 2a 20 86 97 04 60 bb 7b d1 b5 4b f0 3a 5c f5 81 16 ed 46 cf 01 9a 8e f8 4a 0a 78 c5 2c 6d a6 b9 44 d6"); !bytes.Equal(proof, want) {
		t.Errorf("PROOF frame = % x\nSPEC.md §16.7.2 says % x", proof, want)
	}
}

// ---- the raw client ---------------------------------------------------

// rspecClient is the client side of a resumable session written from
// SPEC.md alone: its own HELLO, X25519 key, sequence counts, replay
// buffer, ACKs and flow-control credit. It is driven by one goroutine.
type rspecClient struct {
	t    *testing.T
	addr string
	conn net.Conn
	rd   *frame.Reader

	key    *ecdh.PrivateKey
	hello  frame.Settings // the HELLO this client sent
	server frame.Settings // the server's HELLO (its slices copied)
	secret []byte         // §16.2

	// This client's sequence (§16.3).
	sent       uint64          // bytes of every non-RESUME frame written, HELLO first
	boundaries map[uint64]bool // the counts at which one of our frames ends
	outStart   uint64          // the replay buffer holds bytes [outStart, sent) ...
	out        []byte          // ... here
	acked      uint64          // the largest count the server acknowledged
	acks       []uint64        // every ACK's received, in order of arrival

	// The server's sequence.
	received uint64 // bytes of complete frames read and acted on
	ackSent  uint64 // received, as of our last ACK

	// Flow control towards the server (§6).
	sessCredit   int64
	streamCredit map[uint32]int64

	queued []frame.Frame // DATA, RESET and GOAWAY read while waiting (credit, sync)
	pings  uint64        // opaque of the last PING sent

	maxData int // if > 0, the most payload per DATA frame sent
}

// rspecDial connects a raw client to addr, sends its HELLO (offering
// resumption) and reads the server's, from which it derives the secret.
func rspecDial(t *testing.T, addr string) *rspecClient {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &rspecClient{
		t: t, addr: addr, key: key,
		boundaries:   map[uint64]bool{0: true},
		streamCredit: make(map[uint32]int64),
	}
	c.hello = frame.Settings{
		Magic:              []byte(frame.Magic),
		Version:            frame.Version,
		InitialWindow:      256 << 10,
		MaxFrameSize:       frame.MinMaxFrameSize, // the server must split its DATA: several frames to cut between
		MaxIncomingStreams: 16,
		SessionWindow:      1 << 20,
		Role:               frame.RoleClient,
		Nonce:              rspecRandom(t, 16),
		ResumeKey:          key.PublicKey().Bytes(),
	}
	c.conn = c.dialConn()
	c.rd = frame.NewReader(c.conn, c.hello.MaxFrameSize)
	c.write(&frame.Frame{Type: frame.Hello, HasSettings: true, Settings: c.hello})

	f, err := c.readFrame(c.rd)
	if err != nil {
		t.Fatalf("raw client: reading the server's HELLO: %v", err)
	}
	h := f.Settings
	switch {
	case f.Type != frame.Hello || !f.HasSettings:
		t.Fatalf("raw client: first frame from the server is %v, want HELLO", &f)
	case string(h.Magic) != frame.Magic || h.Version != frame.Version:
		t.Fatalf("raw client: server's HELLO has magic %q version %d", h.Magic, h.Version)
	case h.Role != frame.RoleServer:
		t.Fatalf("raw client: server's HELLO has role %v", h.Role)
	case len(h.ResumeKey) != 32:
		t.Fatalf("raw client: server's resume_key is %d bytes, want an X25519 public key (32) (§16.2)", len(h.ResumeKey))
	case len(h.ResumeID) < 8 || len(h.ResumeID) > 64:
		t.Fatalf("raw client: server's resume_id is %d bytes, want 8 to 64 (§16.2)", len(h.ResumeID))
	}
	c.server = h
	peer, err := ecdh.X25519().NewPublicKey(h.ResumeKey)
	if err != nil {
		t.Fatalf("raw client: server's resume_key: %v", err)
	}
	shared, err := key.ECDH(peer)
	if err != nil {
		t.Fatalf("raw client: X25519 with the server's resume_key: %v", err)
	}
	c.secret = rspecSecret(shared, h.ResumeID, c.hello.ResumeKey, h.ResumeKey)
	c.sessCredit = int64(h.SessionWindow)
	return c
}

func rspecRandom(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := crand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// dialConn opens a new TCP connection to the server, bounded by
// rspecWait, and closed at the end of the test.
func (c *rspecClient) dialConn() net.Conn {
	c.t.Helper()
	conn, err := net.DialTimeout("tcp", c.addr, rspecWait)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(rspecWait))
	return conn
}

// write sends f on the current connection. Every frame but a RESUME is
// part of the sequence: counted and kept for replay (§16.3).
func (c *rspecClient) write(f *frame.Frame) {
	c.t.Helper()
	b := f.Append(nil)
	if f.Type != frame.Resume {
		c.out = append(c.out, b...)
		c.sent += uint64(len(b))
		c.boundaries[c.sent] = true
	}
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("raw client: writing %v: %v", f, err)
	}
}

// readFrame reads one frame from rd and returns a copy of it. A frame
// other than RESUME counts towards received by the bytes it took on the
// wire, length prefix included (§16.3); the caller acts on it before it
// reads the next one.
func (c *rspecClient) readFrame(rd *frame.Reader) (frame.Frame, error) {
	before := rd.BytesRead()
	f, err := rd.ReadFrame()
	if err != nil {
		return frame.Frame{}, err
	}
	if f.Type != frame.Resume {
		c.received += rd.BytesRead() - before
	}
	g := *f
	g.Payload = bytes.Clone(f.Payload)
	g.Debug = bytes.Clone(f.Debug)
	g.Settings.Magic = bytes.Clone(f.Settings.Magic)
	g.Settings.Compression = append([]frame.Compression(nil), f.Settings.Compression...)
	g.Settings.Nonce = bytes.Clone(f.Settings.Nonce)
	g.Settings.ResumeKey = bytes.Clone(f.Settings.ResumeKey)
	g.Settings.ResumeID = bytes.Clone(f.Settings.ResumeID)
	g.Resume.SessionID = bytes.Clone(f.Resume.SessionID)
	g.Resume.Nonce = bytes.Clone(f.Resume.Nonce)
	g.Resume.MAC = bytes.Clone(f.Resume.MAC)
	return g, nil
}

// next returns the next frame of the session, after acting on it as the
// SPEC says for session frames: credit from WINDOW_UPDATE, an answer to a
// PING, an ACK checked and applied; then it sends an ACK of its own if
// one is due.
func (c *rspecClient) next() frame.Frame {
	c.t.Helper()
	if len(c.queued) > 0 {
		f := c.queued[0]
		c.queued = c.queued[1:]
		return f
	}
	return c.readNext()
}

// readNext is next without the frames queued: it reads the connection.
func (c *rspecClient) readNext() frame.Frame {
	c.t.Helper()
	f, err := c.tryReadNext()
	if err != nil {
		c.t.Fatalf("raw client: reading a frame: %v", err)
	}
	return f
}

// tryReadNext is readNext returning a read error.
func (c *rspecClient) tryReadNext() (frame.Frame, error) {
	c.t.Helper()
	f, err := c.readFrame(c.rd)
	if err != nil {
		return f, err
	}
	switch f.Type {
	case frame.Hello, frame.Resume:
		c.t.Fatalf("raw client: %v in a running session (§4.1, §16.4: PROTOCOL_ERROR)", &f)
	case frame.WindowUpdate:
		if f.StreamID == 0 {
			c.sessCredit += int64(f.WindowDelta)
		} else {
			c.streamCredit[f.StreamID] += int64(f.WindowDelta)
		}
	case frame.Ping:
		if !f.Flags.Has(frame.FlagACK) {
			c.write(&frame.Frame{Type: frame.Ping, Flags: frame.FlagACK, Opaque: f.Opaque})
		}
	case frame.Ack:
		if f.Received > c.sent {
			c.t.Fatalf("raw client: the server ACKed %d bytes; only %d were sent (§16.3: PROTOCOL_ERROR)", f.Received, c.sent)
		}
		if !c.boundaries[f.Received] {
			c.t.Errorf("raw client: the server ACKed %d bytes, which is not the end of a frame of ours (§16.3: complete frames only)", f.Received)
		}
		c.acks = append(c.acks, f.Received)
		if f.Received > c.acked {
			c.acked = f.Received
			c.out = c.out[c.acked-c.outStart:]
			c.outStart = c.acked
		}
	}
	if c.received-c.ackSent >= rspecAckEvery(c.hello.SessionWindow) {
		c.ackSent = c.received
		c.write(&frame.Frame{Type: frame.Ack, Received: c.received})
	}
	return f, nil
}

// sendData writes p on stream id in DATA frames within the server's
// max_frame_size and the credit it gave (§6), reading frames for more
// credit when it runs out. SYN goes on the first frame, FIN on the last.
func (c *rspecClient) sendData(id uint32, flags frame.Flags, p []byte) {
	c.t.Helper()
	if flags.Has(frame.FlagSYN) {
		c.streamCredit[id] += int64(c.server.InitialWindow)
	}
	maxPayload := int(c.server.MaxFrameSize) - frame.MaxDataOverhead
	if c.maxData > 0 {
		maxPayload = min(maxPayload, c.maxData)
	}
	for {
		n := min(len(p), maxPayload)
		for n > 0 {
			if credit := min(c.sessCredit, c.streamCredit[id]); credit > 0 {
				n = min(n, int(credit))
				break
			}
			switch f := c.readNext(); f.Type {
			case frame.Data, frame.Reset, frame.GoAway:
				c.queued = append(c.queued, f)
				if f.Type == frame.GoAway {
					c.t.Fatalf("raw client: GOAWAY while sending: %v", &f)
				}
			}
		}
		last := n == len(p)
		fl := flags & frame.FlagSYN
		if last {
			fl |= flags & frame.FlagFIN
		}
		c.write(&frame.Frame{Type: frame.Data, StreamID: id, Flags: fl, Payload: p[:n]})
		c.sessCredit -= int64(n)
		c.streamCredit[id] -= int64(n)
		p = p[n:]
		flags &^= frame.FlagSYN
		if last {
			return
		}
	}
}

// sync makes sure the server has acted on every frame this client has
// sent: it sends a PING and reads until its answer, which the server
// sends after it has read every frame before the PING (frames are acted
// on in order). If the client wrote something meanwhile (an answer to a
// PING of the server's), it goes round again.
func (c *rspecClient) sync() {
	c.t.Helper()
	for {
		c.pings++
		opaque := c.pings
		c.write(&frame.Frame{Type: frame.Ping, Opaque: opaque})
		mark := c.sent
		for {
			f := c.readNext()
			if f.Type == frame.Ping && f.Flags.Has(frame.FlagACK) && f.Opaque == opaque {
				break
			}
			if f.Type == frame.Data || f.Type == frame.Reset || f.Type == frame.GoAway {
				c.queued = append(c.queued, f)
			}
		}
		if c.sent == mark {
			return
		}
	}
}

// drop breaks the connection abruptly (RST, whatever is in flight is
// lost). The client reads nothing more from it, so received is final.
func (c *rspecClient) drop() {
	if tc, ok := c.conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.conn.Close()
}

// rspecAttempt is one resume handshake on a new connection, up to the
// server's answer to the PROOF.
type rspecAttempt struct {
	conn   net.Conn
	rd     *frame.Reader
	cn, sn []byte      // the client's and the server's nonce
	answer frame.Frame // ACCEPTED or REFUSED
}

// attempt dials, sends REQUEST, reads CHALLENGE and sends PROOF with the
// client's received count and the MAC mac computes (§16.4 steps 1-3),
// then reads the answer.
func (c *rspecClient) attempt(mac func(cn, sn []byte, received uint64) []byte) *rspecAttempt {
	c.t.Helper()
	a := &rspecAttempt{conn: c.dialConn(), cn: rspecRandom(c.t, 16)}
	a.rd = frame.NewReader(a.conn, c.hello.MaxFrameSize)
	c.writeTo(a.conn, &frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
		Step: frame.ResumeRequest, SessionID: c.server.ResumeID, Nonce: a.cn,
	}})
	f, err := c.readFrame(a.rd)
	if err != nil {
		c.t.Fatalf("raw client: waiting for RESUME CHALLENGE: %v", err)
	}
	if f.Type != frame.Resume || !f.HasResume || f.Resume.Step != frame.ResumeChallenge {
		c.t.Fatalf("raw client: answer to REQUEST is %v, want RESUME CHALLENGE", &f)
	}
	if n := len(f.Resume.Nonce); n < 16 || n > 64 {
		c.t.Fatalf("raw client: CHALLENGE nonce is %d bytes, want 16 to 64 (§16.4)", n)
	}
	a.sn = f.Resume.Nonce
	c.writeTo(a.conn, &frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
		Step: frame.ResumeProof, Received: c.received, MAC: mac(a.cn, a.sn, c.received),
	}})
	if a.answer, err = c.readFrame(a.rd); err != nil {
		c.t.Fatalf("raw client: waiting for the answer to PROOF: %v", err)
	}
	if a.answer.Type != frame.Resume || !a.answer.HasResume {
		c.t.Fatalf("raw client: answer to PROOF is %v, want RESUME", &a.answer)
	}
	return a
}

// writeTo writes a RESUME frame (not part of the sequence) to conn.
func (c *rspecClient) writeTo(conn net.Conn, f *frame.Frame) {
	c.t.Helper()
	if _, err := conn.Write(f.Append(nil)); err != nil {
		c.t.Fatalf("raw client: writing %v: %v", f, err)
	}
}

// proof is the MAC a client holding the secret sends.
func (c *rspecClient) proof(cn, sn []byte, received uint64) []byte {
	return rspecMAC(c.secret, rspecClientLabel, c.server.ResumeID, cn, sn, received)
}

// resume runs a resume handshake with a correct proof, checks the
// server's ACCEPTED as §16.4 step 5 says (its MAC; acknowledged ≤ its
// count ≤ sent), makes the new connection the session's and sends again
// what the server has not received. It returns the server's count.
func (c *rspecClient) resume() uint64 {
	c.t.Helper()
	a := c.attempt(c.proof)
	r := a.answer.Resume
	if r.Step != frame.ResumeAccepted {
		c.t.Fatalf("raw client: a correct PROOF was answered with %v, want RESUME ACCEPTED", &a.answer)
	}
	want := rspecMAC(c.secret, rspecServerLabel, c.server.ResumeID, a.cn, a.sn, r.Received)
	if !hmac.Equal(r.MAC, want) {
		c.t.Fatalf("raw client: the server's MAC in ACCEPTED (received %d) is %x; §16.4 gives %x", r.Received, r.MAC, want)
	}
	if r.Received < c.acked || r.Received > c.sent {
		c.t.Fatalf("raw client: the server says it received %d bytes; acknowledged %d, sent %d (§16.4)", r.Received, c.acked, c.sent)
	}
	c.conn, c.rd = a.conn, a.rd
	c.acked = r.Received
	c.out = c.out[c.acked-c.outStart:]
	c.outStart = c.acked
	c.ackSent = c.received // the PROOF told the server
	if len(c.out) > 0 {
		if _, err := c.conn.Write(c.out); err != nil {
			c.t.Fatalf("raw client: resending %d bytes: %v", len(c.out), err)
		}
	}
	return r.Received
}

// rspecExpectClosed fails unless the peer closes rd's connection (rather than the read
// deadline passing).
func rspecExpectClosed(t *testing.T, rd *frame.Reader) {
	t.Helper()
	if f, err := rd.ReadFrame(); err == nil {
		t.Fatalf("raw client: got %v, want the connection closed", f)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("raw client: the server did not close the connection: %v", err)
	}
}

// ---- the server side ---------------------------------------------------

// rspecListen starts a session.Listener on loopback, closed when the test
// ends.
func rspecListen(t *testing.T, cfg *session.Config) *session.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := session.NewListener(ln, cfg)
	t.Cleanup(func() { l.Close() })
	return l
}

// rspecAccept returns the Listener's next session, closed when the test
// ends.
func rspecAccept(t *testing.T, l *session.Listener) *session.Session {
	t.Helper()
	type res struct {
		s   *session.Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := l.Accept()
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Listener.Accept: %v", r.err)
		}
		t.Cleanup(func() { r.s.Close() })
		return r.s
	case <-time.After(rspecWait):
		l.Close() // ends the Accept above
		t.Fatal("Listener.Accept: no session")
		return nil
	}
}

func rspecAcceptStream(t *testing.T, s *session.Session) *session.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rspecWait)
	defer cancel()
	st, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("AcceptStream: %v", err)
	}
	st.SetDeadline(time.Now().Add(rspecWait))
	return st
}

// rspecReadExactly reads len(want) bytes from st and fails unless they
// are want.
func rspecReadExactly(t *testing.T, st *session.Stream, want []byte, what string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(st, got); err != nil {
		t.Fatalf("server: reading %s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("server: %s arrived wrong: got % x..., want % x...", what, got[:min(16, len(got))], want[:min(16, len(want))])
	}
}

// rspecExpectEOF fails unless st's next read is the end of the stream.
func rspecExpectEOF(t *testing.T, st *session.Stream) {
	t.Helper()
	var b [64]byte
	n, err := st.Read(b[:])
	if n > 0 || err != io.EOF {
		t.Fatalf("server: after the data, Read = %d bytes (% x), %v; want 0, io.EOF: nothing more, nothing twice", n, b[:n], err)
	}
}

// readReply reads frames until stream id's FIN and returns the
// stream's bytes and how many accept acknowledgements (empty DATA with
// FLAG_ACK, §5.2) came with them.
func (c *rspecClient) readReply(id uint32) (data []byte, acceptAcks int) {
	c.t.Helper()
	for {
		f := c.next()
		switch {
		case f.Type == frame.Reset && f.StreamID == id:
			c.t.Fatalf("raw client: stream %d reset: %v", id, &f)
		case f.Type == frame.GoAway:
			c.t.Fatalf("raw client: GOAWAY: %v", &f)
		case f.Type != frame.Data || f.StreamID != id:
			continue
		}
		if f.Flags.Has(frame.FlagACK) && len(f.Payload) == 0 {
			acceptAcks++
		}
		data = append(data, f.Payload...)
		if f.Flags.Has(frame.FlagFIN) {
			return data, acceptAcks
		}
	}
}

// ---- the tests ---------------------------------------------------------

// TestResumeRawClientFollowsSpec: a raw client makes a resumable session,
// opens a stream, reads part of the server's reply, breaks the connection
// and resumes on a new one. The server must count the client's bytes as
// §16.3 says, prove itself as §16.4 says, send again exactly what the
// client had not counted, and the stream must go on in both directions
// with nothing lost or doubled.
func TestResumeRawClientFollowsSpec(t *testing.T) {
	l := rspecListen(t, nil)
	c := rspecDial(t, l.Addr().String())
	srv := rspecAccept(t, l)

	p1 := rspecSeq(700, 1)
	c.sendData(1, frame.FlagSYN, p1)
	st := rspecAcceptStream(t, srv)
	rspecReadExactly(t, st, p1, "the first payload")
	// Make sure the server has acted on everything the client sent
	// (HELLO, SYN, answers to its PINGs): then its received count is this
	// client's sent count, whatever the break loses.
	c.sync()
	sentBefore := c.sent

	reply := rspecSeq(5000, 100) // several frames of at most 1024 bytes
	if _, err := st.Write(reply); err != nil {
		t.Fatalf("server: writing the reply: %v", err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatalf("server: CloseWrite: %v", err)
	}

	// Read up to and including the first frame that carries reply bytes,
	// then break the connection: the rest of the reply is lost with it.
	var got []byte
	acceptAcks := 0
	for len(got) == 0 {
		f := c.next()
		if f.Type != frame.Data || f.StreamID != 1 {
			continue
		}
		if f.Flags.Has(frame.FlagACK) && len(f.Payload) == 0 {
			acceptAcks++
		}
		got = append(got, f.Payload...)
	}
	if len(got) >= len(reply) {
		t.Fatalf("the whole reply (%d bytes) came in one frame; max_frame_size was %d", len(got), c.hello.MaxFrameSize)
	}
	receivedBefore := c.received
	c.drop()

	sentAtBreak := c.sent
	serverReceived := c.resume()
	switch {
	case sentAtBreak == sentBefore && serverReceived != sentBefore:
		t.Fatalf("ACCEPTED says the server received %d bytes; the client sent %d (HELLO and frames, §16.3)", serverReceived, sentBefore)
	case serverReceived < sentBefore || !c.boundaries[serverReceived]:
		// The client answered a PING after sync, which the break may have
		// lost; the server's count is then somewhere in between.
		t.Fatalf("ACCEPTED says the server received %d bytes; it had acted on %d, and %d were sent", serverReceived, sentBefore, sentAtBreak)
	}
	t.Logf("client sent %d bytes, received %d before the break; the server received %d", sentBefore, receivedBefore, serverReceived)

	rest, acks := c.readReply(1)
	acceptAcks += acks
	got = append(got, rest...)
	if !bytes.Equal(got, reply) {
		t.Fatalf("the reply arrived as %d bytes (%d before the break, %d after); want the %d written, once, in order", len(got), len(got)-len(rest), len(rest), len(reply))
	}
	if acceptAcks != 1 {
		t.Errorf("the stream's accept acknowledgement (§5.2) arrived %d times across the resume, want once", acceptAcks)
	}

	p2 := rspecSeq(900, 33)
	c.sendData(1, frame.FlagFIN, p2)
	rspecReadExactly(t, st, p2, "the payload sent after the resume")
	rspecExpectEOF(t, st)

	if n := srv.Stats().Resumes; n != 1 {
		t.Errorf("server Stats().Resumes = %d, want 1", n)
	}
	if err := srv.Err(); err != nil {
		t.Errorf("server session ended: %v", err)
	}
}

// TestResumeRawClientBadProof: a PROOF whose MAC was computed over
// another received count, or with the server's label, is REFUSED with a
// reason, and the connection closed (§16.4 step 4). The session is left
// as it was: its live connection goes on, and after a break the client
// resumes it with a correct proof on a third connection. (The bad proofs
// stand for an attacker's, §16.6: the legitimate client, which never saw
// a REFUSED, may resume.)
func TestResumeRawClientBadProof(t *testing.T) {
	for _, tc := range []struct {
		name string
		mac  func(c *rspecClient, cn, sn []byte, received uint64) []byte
	}{
		{"wrong count", func(c *rspecClient, cn, sn []byte, received uint64) []byte {
			return rspecMAC(c.secret, rspecClientLabel, c.server.ResumeID, cn, sn, received+1)
		}},
		{"wrong label", func(c *rspecClient, cn, sn []byte, received uint64) []byte {
			return rspecMAC(c.secret, rspecServerLabel, c.server.ResumeID, cn, sn, received)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := rspecListen(t, nil)
			c := rspecDial(t, l.Addr().String())
			srv := rspecAccept(t, l)

			p1 := rspecSeq(300, 5)
			c.sendData(1, frame.FlagSYN, p1)
			st := rspecAcceptStream(t, srv)
			rspecReadExactly(t, st, p1, "the first payload")

			// A bad proof while the first connection is still up.
			a := c.attempt(func(cn, sn []byte, received uint64) []byte { return tc.mac(c, cn, sn, received) })
			if a.answer.Resume.Step != frame.ResumeRefused {
				t.Fatalf("a bad PROOF was answered with %v, want RESUME REFUSED", &a.answer)
			}
			if len(a.answer.Debug) == 0 {
				t.Error("REFUSED without a reason in debug (§16.4 step 2)")
			}
			t.Logf("REFUSED: %q", a.answer.Debug)
			rspecExpectClosed(t, a.rd)

			// The session is as it was: the first connection carries data
			// both ways.
			p2 := rspecSeq(400, 77)
			c.sendData(1, 0, p2)
			rspecReadExactly(t, st, p2, "the payload sent after the refusal")
			r1 := rspecSeq(600, 9)
			if _, err := st.Write(r1); err != nil {
				t.Fatalf("server: write: %v", err)
			}
			var got []byte
			for len(got) < len(r1) {
				if f := c.next(); f.Type == frame.Data && f.StreamID == 1 {
					got = append(got, f.Payload...)
				}
			}
			if !bytes.Equal(got, r1) {
				t.Fatalf("the reply on the first connection arrived wrong (%d bytes)", len(got))
			}

			// Break it, and resume for real on a third connection.
			c.sync()
			sentBefore := c.sent
			c.drop()
			if got := c.resume(); got != sentBefore {
				t.Fatalf("ACCEPTED says the server received %d bytes; the client sent %d", got, sentBefore)
			}
			p3 := rspecSeq(500, 200)
			c.sendData(1, frame.FlagFIN, p3)
			rspecReadExactly(t, st, p3, "the payload sent after the resume")
			rspecExpectEOF(t, st)
			r2 := rspecSeq(800, 42)
			if _, err := st.Write(r2); err != nil {
				t.Fatalf("server: write after the resume: %v", err)
			}
			if err := st.CloseWrite(); err != nil {
				t.Fatalf("server: CloseWrite: %v", err)
			}
			if rest, _ := c.readReply(1); !bytes.Equal(rest, r2) {
				t.Fatalf("the reply after the resume arrived as %d bytes, want the %d written", len(rest), len(r2))
			}
			if n := srv.Stats().Resumes; n != 1 {
				t.Errorf("server Stats().Resumes = %d, want 1 (a refused attempt is no resume)", n)
			}
		})
	}
}

// TestResumeRawClientAck: the server acknowledges the client's sequence
// with ACK frames as §16.3 says — at frame boundaries, never above what
// was sent, and at the latest every ackEvery bytes — and an ACK from the
// client of more bytes than the server sent ends the session with
// PROTOCOL_ERROR.
func TestResumeRawClientAck(t *testing.T) {
	cfg := session.DefaultConfig()
	cfg.MaxSessionWindow = 64 << 10 // ackEvery = 8 KiB: a few dozen ACKs below
	cfg.InitialStreamWindow = 16 << 10
	cfg.MaxStreamWindow = 16 << 10
	l := rspecListen(t, cfg)
	c := rspecDial(t, l.Addr().String())
	srv := rspecAccept(t, l)
	ackEvery := rspecAckEvery(c.server.SessionWindow)

	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	done := make(chan result, 1)
	c.sendData(1, frame.FlagSYN, nil)
	st := rspecAcceptStream(t, srv)
	go func() {
		h := sha256.New()
		n, err := io.Copy(h, st)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		done <- r
	}()

	payload := rspecSeq(256<<10, 3)
	c.maxData = 1000 // many frames per ackEvery, so that a late ACK shows
	c.sendData(1, frame.FlagFIN, payload)
	finSent := c.sent
	var r result
	select {
	case r = <-done:
	case <-time.After(rspecWait):
		t.Fatal("server: the stream's data did not arrive")
	}
	if r.err != nil || r.n != int64(len(payload)) || r.sum != sha256.Sum256(payload) {
		t.Fatalf("server read %d bytes (err %v); want the %d sent, intact", r.n, r.err, len(payload))
	}

	// The server has acted on every frame up to the FIN; by §16.3 its
	// last ACK leaves fewer than ackEvery of those bytes unacknowledged.
	for finSent-c.acked >= ackEvery {
		f, err := c.tryReadNext()
		if err != nil {
			t.Fatalf("the server acted on %d bytes and ACKed %d (ackEvery %d); waiting for an ACK: %v", finSent, c.acked, ackEvery, err)
		}
		if f.Type == frame.GoAway {
			t.Fatalf("GOAWAY while waiting for an ACK: %v", &f)
		}
	}
	if len(c.acks) == 0 {
		t.Fatal("no ACK")
	}
	// And each ACK came at the latest at the end of the first frame that
	// took the count ackEvery past the ACK before it (the first ACK: past
	// 0). Frames are acted on whole, so that frame's end is the earliest
	// count the rule can ask for.
	var ends []uint64
	for b := range c.boundaries {
		if b <= finSent {
			ends = append(ends, b)
		}
	}
	slices.Sort(ends)
	prev := uint64(0)
	for _, a := range c.acks {
		if a <= prev {
			continue // not a new ACK (an old one sent again)
		}
		i, _ := slices.BinarySearch(ends, prev+ackEvery)
		if i < len(ends) && a > ends[i] {
			t.Errorf("ACK of %d bytes follows one of %d: it was due at %d (ackEvery %d, §16.3)", a, prev, ends[i], ackEvery)
		}
		prev = a
	}
	t.Logf("%d ACKs for %d bytes sent (ackEvery %d); the last is %d: %v", len(c.acks), finSent, ackEvery, c.acked, c.acks)

	// An ACK of more than the server has sent: PROTOCOL_ERROR (§16.3),
	// a session error (§9, and §16.5: not a break to resume from).
	c.write(&frame.Frame{Type: frame.Ack, Received: c.received + 1<<40})
	for {
		f, err := c.readFrame(c.rd)
		if err != nil {
			t.Fatalf("raw client: the connection ended (%v) without a GOAWAY (§9)", err)
		}
		if f.Type == frame.GoAway {
			if f.ErrorCode != frame.ProtocolError {
				t.Errorf("GOAWAY code %v, want PROTOCOL_ERROR", f.ErrorCode)
			}
			t.Logf("GOAWAY: %v", &f)
			break
		}
	}
	rspecExpectClosed(t, c.rd)
	select {
	case <-srv.CloseChan():
	case <-time.After(rspecWait):
		t.Fatal("server session still running after an ACK beyond its sequence")
	}
	if err := srv.Err(); err == nil || !strings.Contains(err.Error(), "ACK") {
		t.Errorf("server Err() = %v; want a protocol error about the ACK", err)
	}
	if n := srv.Stats().Resumes; n != 0 {
		t.Errorf("server Stats().Resumes = %d, want 0", n)
	}
}
