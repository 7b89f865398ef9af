package session

import (
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/braidmux/braid/frame"
)

// Resumable sessions (SPEC.md §16). A session made by Dial or a Listener
// survives its connection breaking: the client dials again, proves it
// holds the session's secret, and both sides send again what the other
// has not received. Streams see nothing but a pause.
//
// What is resent is not per stream but the session's whole frame
// sequence: each side numbers the bytes of the frames it writes (the
// HELLO is byte 0), keeps those the peer has not acknowledged in a replay
// buffer (replayBuf), and the peer acknowledges with ACK frames; on
// resume each side says how many bytes it received, and the other writes
// the rest again. So every frame — DATA, SYN, FIN, RESET, WINDOW_UPDATE,
// GOAWAY — arrives exactly once and in order, and flow control, stream
// states and compression need no reconciling. DATA in the replay buffer
// is at most what the peer has not yet read, which its windows bound;
// the buffer's capacity (resumer.capacity) enforces it against a peer
// that does not acknowledge.

// resumer is a resumable session's state. Guarded by s.mu, except out
// (see replayBuf).
//
// A plain session (one that does not resume) has one too, with plain
// set, for the write pipeline alone (startPipeline): the filler and
// writer stages work as in a resumable session, but only while a large
// Write waits (bulk), and out drops bytes as soon as they are written
// (acked follows wrote). The fields of the receiving side and of the
// connection are unused then, as are ACK frames.
type resumer struct {
	plain bool       // the write pipeline only: the session does not resume (startPipeline)
	w     connWriter // plain: the filler's batch (a direct write may be writing the seam's)
	bulk  int        // plain: Writes waiting for the filler to copy their bytes

	id     []byte           // the session's ID, chosen by the server
	priv   *ecdh.PrivateKey // this side's X25519 key for the handshake
	key    []byte           // its public half: this side's HELLO resume_key
	secret []byte           // agreed in the handshake; never sent

	// Sending. Our frame sequence, in byte offsets:
	//   trimmed ≤ acked ≤ wrote ≤ sent
	// out holds [trimmed, sent); of that, [wrote, wrote+pendingN) is
	// copied and waiting for the connection, and [wrote+pendingN, sent)
	// is being copied by the holder of filling.
	sent     uint64    // bytes of our frame sequence taken from the scheduler (reserved in out)
	wrote    uint64    // bytes of it handed to the current connection (or resent on it)
	acked    uint64    // bytes of it the peer has acknowledged
	trimmed  uint64    // where out really starts (trimmed lazily, see trimOut)
	out      replayBuf // bytes [trimmed, sent)
	capacity uint64    // most bytes sent and unacknowledged before DATA waits; 0 until the handshake agrees to resume

	// The two stages of a write (Session.writeLoop).
	filling  bool          // someone fills a batch and copies it into out (fillUnlocking, writeCopyUnlocking)
	regions  net.Buffers   // the filler's regions of out, reused
	pending  net.Buffers   // regions of out copied and not yet written, joined where contiguous
	pendingN int           // bytes in pending
	writing  net.Buffers   // spare storage for pending, swapped with it by each write
	busyFrom uint64        // while connBusy: where the bytes being written start (trimOut keeps them)
	fillerOn bool          // the filler goroutine runs (fillLoop); else the writer goroutine fills
	fillKick chan struct{} // wakes the filler; capacity 1

	// Receiving.
	received uint64 // bytes of the peer's frame sequence applied
	ackSent  uint64 // received, as of the last ACK queued
	ackEvery uint64 // ACK after this many bytes received

	// The connection.
	detached bool        // the connection is lost; waiting to be resumed
	lostErr  error       // why it was lost
	timer    *time.Timer // ResumeTimeout, while detached
	outages  int         // connections lost so far: which one timer is for
	swapping bool        // a resume is replacing the connection
	swapped  sync.Cond   // on s.mu: signalled when connBusy is released during a swap

	// Client side.
	dial   func(context.Context) (net.Conn, error)
	ctx    context.Context // ends with the session: stops redialling
	cancel context.CancelFunc

	// Server side: the Listener that made the session.
	l *Listener
}

// newResumer returns the resumption state for a session that offers to
// resume. Called before the session starts.
func newResumer(s *Session, dial func(context.Context) (net.Conn, error), l *Listener) *resumer {
	r := &resumer{dial: dial, l: l}
	r.priv, _ = ecdh.X25519().GenerateKey(crand.Reader) // cannot fail with crypto/rand
	r.key = r.priv.PublicKey().Bytes()
	if !s.client {
		r.id = make([]byte, 16)
		crand.Read(r.id)
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.swapped.L = &s.mu
	r.ackEvery = uint64(min(max(s.cfg.MaxSessionWindow/8, 4<<10), 1<<20))
	return r
}

// agreeResume completes resumption's part of the handshake from the
// peer's HELLO h: the session resumes only if both sides offered. Called
// with s.mu held by applyHello.
func (s *Session) agreeResume(h *frame.Settings) error {
	r := s.res
	if r == nil {
		s.startPipeline(h)
		return nil
	}
	if len(h.ResumeKey) == 0 || (s.client && len(h.ResumeID) == 0) {
		s.res = nil // the peer does not resume: a plain session
		r.cancel()
		s.startPipeline(h)
		return nil
	}
	peerKey, err := ecdh.X25519().NewPublicKey(h.ResumeKey)
	if err != nil {
		return fmt.Errorf("%w: peer's resume_key is not an X25519 public key: %v", ErrHandshake, err)
	}
	shared, err := r.priv.ECDH(peerKey)
	if err != nil {
		return fmt.Errorf("%w: peer's resume_key: %v", ErrHandshake, err)
	}
	r.priv = nil
	if s.client {
		if len(h.ResumeID) < 8 {
			return fmt.Errorf("%w: peer's resume_id is too short", ErrHandshake)
		}
		r.id = append([]byte(nil), h.ResumeID...)
	}
	clientKey, serverKey := r.key, h.ResumeKey
	if !s.client {
		clientKey, serverKey = h.ResumeKey, r.key
	}
	r.secret = resumeSecret(s.seam.conn, shared, r.id, clientKey, serverKey)
	r.capacity = uint64(h.SessionWindow) + replaySlack
	if r.l != nil {
		r.l.register(s, r.id)
	}
	r.fillKick = make(chan struct{}, 1)
	r.fillerOn = true
	s.wg.Add(1)
	go s.fillLoop(r)
	return nil
}

// startPipeline gives a plain session the two-stage write pipeline of a
// resumable one, without resumption: a Write of at least handOffMin
// bytes is copied by the filler goroutine into pooled chunks and returns
// then, and the writer goroutine writes the copies, several Writes' in
// one vectored write. One connection's sender is limited by its write
// calls: one stream's 128 KiB Writes moved 0.80–0.90 of TCP's bytes
// written straight from the caller's slice, and 0.95–1.09 through the
// pipeline (BENCHMARKS.md). Small Writes, and any Write while no large one waits,
// are still written from the caller's slice. Called with s.mu held by
// agreeResume, once the handshake has settled that the session does not
// resume.
func (s *Session) startPipeline(h *frame.Settings) {
	if !plainPipeline {
		return
	}
	r := &resumer{plain: true, cancel: func() {}}
	r.swapped.L = &s.mu
	r.capacity = uint64(h.SessionWindow) + replaySlack
	s.res = r
	r.fillKick = make(chan struct{}, 1)
	r.fillerOn = true
	s.wg.Add(1)
	go s.fillLoop(r)
}

// plainPipeline turns plain sessions' write pipeline on (startPipeline);
// the session benchmarks turn it off with BRAID_PIPE=0, for comparison.
var plainPipeline = true

// fillLoop is a resumable session's filler goroutine, the first stage of
// its writes (writeLoop): it fills batches and copies them to the replay
// buffer while the writer goroutine writes the batch before. It stops
// once the session is closing; the writer then fills what is left.
func (s *Session) fillLoop(r *resumer) {
	defer s.wg.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.res == r && !s.closing {
		if r.canFill() && s.sched.HasWork(s.dataRoom()) && (!r.plain || r.bulk > 0) {
			s.fillUnlocking(r)
			continue
		}
		s.mu.Unlock()
		<-r.fillKick
		s.mu.Lock()
	}
	r.fillerOn = false
	s.wake() // the writer fills from now on
}

// kickFiller wakes the filler goroutine, if there is one. Called with
// s.mu held.
func (r *resumer) kickFiller() {
	if r.fillerOn {
		select {
		case r.fillKick <- struct{}{}:
		default:
		}
	}
}

// ackPiggyback is how much of the peer's sequence may arrive before an
// ACK rides along with whatever this side writes next; ackEvery, larger,
// is when one is sent on its own.
const ackPiggyback = 32 << 10

// replaySlack is what a replay buffer may hold beyond the peer's session
// window: frames the peer received but has not acknowledged yet (it
// acknowledges at least every MiB), and control frames.
const replaySlack = 4 << 20

// resumeSecret derives the session's resume secret from the X25519
// shared secret of the HELLOs' resume keys (an eavesdropper on the first
// connection cannot compute it; only an active attacker in the middle of
// it could) and, over TLS, the connection's exporter (RFC 8446 §7.5),
// which binds it to the TLS session and its authentication.
func resumeSecret(conn net.Conn, shared, id, clientKey, serverKey []byte) []byte {
	context := make([]byte, 0, len(id)+len(clientKey)+len(serverKey))
	context = append(append(append(context, id...), clientKey...), serverKey...)
	var exported []byte
	if tc, ok := conn.(interface{ ConnectionState() tls.ConnectionState }); ok {
		if cs := tc.ConnectionState(); cs.HandshakeComplete {
			exported, _ = cs.ExportKeyingMaterial("EXPORTER-braid-resume", context, 32)
		}
	}
	h := sha256.New()
	h.Write([]byte("braid resume secret\x00"))
	h.Write(shared)
	h.Write(exported) // empty without TLS
	h.Write(context)
	return h.Sum(nil)
}

// resumeMAC is the proof of a resume handshake step: HMAC-SHA256 over
// both sides' fresh nonces and the received count, under the session's
// secret (SPEC.md §16.4).
func resumeMAC(secret []byte, label string, id, clientNonce, serverNonce []byte, received uint64) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	for _, b := range [][]byte{id, clientNonce, serverNonce} {
		m.Write(binary.AppendUvarint(nil, uint64(len(b))))
		m.Write(b)
	}
	m.Write(binary.BigEndian.AppendUint64(nil, received))
	return m.Sum(nil)
}

// MAC labels.
const (
	clientProof = "braid resume client proof"
	serverProof = "braid resume server proof"
)

// dataRoom is how many DATA bytes may be sent now: the session credit,
// and for a resumable session the room left in its replay buffer. Called
// with s.mu held.
func (s *Session) dataRoom() int64 {
	avail := s.sendWin.Available()
	if r := s.res; r != nil && r.capacity > 0 {
		used := r.sent - r.acked
		if used >= r.capacity {
			return 0
		}
		avail = min(avail, int64(r.capacity-used))
	}
	return avail
}

// connFree reports whether a writer may take the connection: nobody
// holds it and no resume is swapping it. Called with s.mu held.
func (s *Session) connFree() bool {
	return !s.connBusy && (s.res == nil || !s.res.swapping)
}

// idle reports whether a goroutine may fill a batch and write it itself
// (writeBatchUnlocking): the connection is free and, in a resumable
// session, no batch is being filled or waits to be written. Called with
// s.mu held.
func (s *Session) idle() bool {
	return s.connFree() && (s.res == nil || (!s.res.filling && s.res.pendingN == 0))
}

// canFill reports whether a batch may be filled and copied now
// (fillUnlocking): nobody else is filling, no resume is swapping the
// connection, and the batch before is on its way (at most one copied
// batch waits for the connection, so a small message queued behind it
// waits for little). Called with s.mu held.
func (r *resumer) canFill() bool {
	return !r.filling && !r.swapping && (r.pendingN < pendingMax || r.detached)
}

// replayPending reports whether a resumable session has bytes on their
// way to the connection: a batch being filled, or copied and not yet
// written. Called with s.mu held.
func (s *Session) replayPending() bool {
	r := s.res
	return r != nil && !r.detached && (r.filling || r.pendingN > 0)
}

// received notes n more bytes of the peer's frame sequence applied and
// queues an ACK when one is due. Called with s.mu held by the reader.
func (s *Session) receivedBytes(n uint64) {
	r := s.res
	if r == nil {
		return
	}
	r.received += n
	if r.capacity > 0 && !r.plain && r.received-r.ackSent >= r.ackEvery && s.closeErr == nil {
		r.ackSent = r.received
		s.sched.PushControl(&frame.Frame{Type: frame.Ack, Received: r.received})
		s.wake()
	}
}

// handleAck applies the peer's ACK: its replay of our bytes up to there
// is no longer needed.
func (s *Session) handleAck(f *frame.Frame) {
	r := s.res
	if r == nil || r.capacity == 0 || r.plain {
		return // not resumable: nothing to trim
	}
	if f.Received > r.wrote {
		s.fail(frame.ProtocolError, fmt.Sprintf("ACK of %d bytes, only %d sent", f.Received, r.wrote))
		return
	}
	if f.Received <= r.acked {
		return // an old ACK, resent after a resume
	}
	full := r.sent-r.acked >= r.capacity
	r.acked = f.Received
	s.trimOut()
	if full {
		s.creditGrew() // DATA waited for room
	}
}

// trimOut drops what the peer acknowledged from the replay buffer. While
// a connection write runs it keeps everything from where that write
// starts, which the write may still read (the peer cannot have
// acknowledged a chunk still being copied into). Called with s.mu held.
func (s *Session) trimOut() {
	r := s.res
	if r == nil {
		return
	}
	to := r.acked
	if s.connBusy {
		to = min(to, r.busyFrom)
	}
	if to <= r.trimmed {
		return
	}
	r.out.trim(int(to - r.trimmed))
	r.trimmed = to
}

// connLost handles the loss of connection c of a resumable session: the
// session detaches and waits up to ResumeTimeout to be resumed; a client
// starts redialling. Streams see a pause. It reports false if the session
// cannot resume (not resumable, ending, or the peer said goodbye), in
// which case the caller ends it as a non-resumable session would. Called
// with s.mu held.
func (s *Session) connLost(c *seam, err error) bool {
	r := s.res
	if r == nil || r.capacity == 0 || r.plain || s.closing || s.closeErr != nil || s.goAwayRecv {
		return false
	}
	if c != s.seam || r.detached {
		return true // already handled
	}
	r.detached = true
	r.lostErr = err
	c.conn.Close()
	s.ctlRoom.Broadcast()
	if s.kaTimer != nil {
		s.kaTimer.Stop()
	}
	s.log.Info("braid: connection lost; waiting to resume the session", "err", err, "timeout", s.cfg.ResumeTimeout, "remote", c.conn.RemoteAddr())
	timeout := s.cfg.ResumeTimeout
	r.outages++
	outage := r.outages
	r.timer = time.AfterFunc(timeout, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.detached && r.outages == outage && s.closeErr == nil {
			s.shutdown(fmt.Errorf("%w: the connection was lost (%v) and not re-established within ResumeTimeout (%v); open a new session (a longer ResumeTimeout rides out longer outages)", ErrNotResumed, r.lostErr, timeout), false)
		}
	})
	if r.l != nil {
		r.l.detachedNow(s)
	}
	if s.client {
		s.wg.Add(1)
		go s.redialLoop(c)
	}
	s.wake() // the writer may go on filling the replay buffer
	return true
}

// endResume releases what resumption holds when the session ends. Called
// with s.mu held by shutdown.
func (s *Session) endResume() {
	r := s.res
	if r == nil {
		return
	}
	r.cancel()
	if r.timer != nil {
		r.timer.Stop()
	}
	if r.l != nil {
		r.l.forget(s, r.id)
	}
	r.swapped.Broadcast()
}

// redialLoop is the client's goroutine while its session is detached: it
// dials, resumes, and on failure tries again after a growing pause, until
// it succeeds, the server refuses, or the session ends (ResumeTimeout).
func (s *Session) redialLoop(lost *seam) {
	defer s.wg.Done()
	r := s.res
	<-lost.readerDone // so that r.received is final
	wait := 25 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.resumeOnce(r)
		if err == nil {
			return
		}
		if errors.Is(err, ErrNotResumed) { // a definite answer: stop
			s.mu.Lock()
			s.shutdown(err, false)
			s.mu.Unlock()
			return
		}
		s.log.Debug("braid: resume attempt failed", "attempt", attempt, "err", err)
		// Full jitter, capped: a server that comes back is not met by
		// every client at once.
		t := time.NewTimer(wait/2 + mrand.N(wait/2+1))
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return
		}
		wait = min(2*wait, maxRedialWait)
	}
}

// maxRedialWait caps the pause between resume attempts.
const maxRedialWait = 2 * time.Second

// resumeOnce dials and runs the client's side of the resume handshake
// (SPEC.md §16.4). An error wrapping ErrNotResumed is the server's
// definite refusal.
func (s *Session) resumeOnce(r *resumer) error {
	ctx, cancel := context.WithTimeout(r.ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := r.dial(ctx)
	if err != nil {
		return fmt.Errorf("dialling: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c := newSeam(conn, s.cfg.MaxFrameSize)
	c.door.done.Store(true)
	fail := func(err error) error {
		stop()
		conn.Close()
		return err
	}
	nonce := make([]byte, 16)
	crand.Read(nonce)
	req := frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{Step: frame.ResumeRequest, SessionID: r.id, Nonce: nonce}}
	if _, err := conn.Write(req.Append(nil)); err != nil {
		return fail(fmt.Errorf("sending resume request: %w", err))
	}
	f, err := c.rd.ReadFrame()
	if err != nil {
		return fail(fmt.Errorf("reading resume challenge: %w", err))
	}
	if err := refused(f); err != nil {
		return fail(err)
	}
	if f.Type != frame.Resume || !f.HasResume || f.Resume.Step != frame.ResumeChallenge || len(f.Resume.Nonce) < 16 {
		return fail(fmt.Errorf("peer answered a resume request with %v", f))
	}
	serverNonce := append([]byte(nil), f.Resume.Nonce...)
	s.mu.Lock()
	received := r.received
	ok := s.closeErr == nil
	s.mu.Unlock()
	if !ok {
		return fail(r.ctx.Err())
	}
	proof := frame.Frame{Type: frame.Resume, HasResume: true, Resume: frame.ResumeInfo{
		Step: frame.ResumeProof, Received: received,
		MAC: resumeMAC(r.secret, clientProof, r.id, nonce, serverNonce, received),
	}}
	if _, err := conn.Write(proof.Append(nil)); err != nil {
		return fail(fmt.Errorf("sending resume proof: %w", err))
	}
	f, err = c.rd.ReadFrame()
	if err != nil {
		return fail(fmt.Errorf("reading resume answer: %w", err))
	}
	if err := refused(f); err != nil {
		return fail(err)
	}
	if f.Type != frame.Resume || !f.HasResume || f.Resume.Step != frame.ResumeAccepted {
		return fail(fmt.Errorf("peer answered a resume proof with %v", f))
	}
	want := resumeMAC(r.secret, serverProof, r.id, nonce, serverNonce, f.Resume.Received)
	if !hmac.Equal(f.Resume.MAC, want) {
		return fail(errors.New("the server's resume proof does not verify: it is not the server this session was made with"))
	}
	if !stop() {
		return fail(ctx.Err()) // the handshake timed out just now: conn is closed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attachUnlocking(c, f.Resume.Received, nil)
}

// refused returns the ErrNotResumed error a RESUME REFUSED or a GOAWAY
// answer carries, or nil.
func refused(f *frame.Frame) error {
	switch {
	case f.Type == frame.Resume && f.HasResume && f.Resume.Step == frame.ResumeRefused:
		return fmt.Errorf("%w: the server refused: %s; open a new session", ErrNotResumed, f.Debug)
	case f.Type == frame.GoAway:
		return fmt.Errorf("%w: the server ended the session: %v %s", ErrNotResumed, f.ErrorCode, f.Debug)
	}
	return nil
}

// attachUnlocking makes c the session's connection after a resume
// handshake whose proof verified: it drops the old connection if it is
// still up, waits for the old reader to exit and the connection to be
// free, writes prefix(received) (the server's RESUME ACCEPTED, which
// needs the final received count) and then every byte the peer has not
// received (peerReceived on), and starts a reader on c. Called with s.mu
// held; releases it while waiting and writing.
func (s *Session) attachUnlocking(c *seam, peerReceived uint64, prefix func(received uint64) []byte) error {
	r := s.res
	for r.swapping && s.closeErr == nil { // another resume is attaching
		r.swapped.Wait()
	}
	if s.closeErr != nil {
		c.conn.Close()
		return s.closeErr
	}
	r.swapping = true
	defer func() {
		r.swapping = false
		r.swapped.Broadcast()
	}()
	old := s.seam
	if !r.detached {
		// The server may not have noticed the old connection die; the
		// proof says the client has moved on.
		r.detached = true
		r.lostErr = errors.New("the client resumed on a new connection")
		if s.kaTimer != nil {
			s.kaTimer.Stop()
		}
	}
	old.conn.Close()
	s.ctlRoom.Broadcast()
	for (s.connBusy || r.filling) && s.closeErr == nil {
		r.swapped.Wait()
	}
	s.mu.Unlock()
	<-old.readerDone
	s.mu.Lock()
	if s.closeErr != nil {
		c.conn.Close()
		return s.closeErr
	}
	if peerReceived < r.acked || peerReceived > r.wrote {
		err := fmt.Errorf("%w: the peer says it received %d bytes, but %d were acknowledged and %d sent", ErrNotResumed, peerReceived, r.acked, r.wrote)
		c.conn.Close()
		s.shutdown(err, false)
		return err
	}
	r.acked = peerReceived
	s.trimOut()
	c.counted = c.rd.BytesRead() // the handshake frames are not in the sequence
	c.door.done.Store(true)
	tuneConn(c.conn, notSentLowat)
	s.seam = c
	r.detached = false
	r.ackSent = r.received // the handshake told the peer
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if r.l != nil {
		r.l.attachedNow(s)
	}
	s.lastRx = time.Now()
	s.pingSentAt = time.Time{}
	s.stats.resumes.Add(1)
	s.wg.Add(1)
	go s.readLoop(c)
	// Replay: everything the peer has not received, copied batches not
	// yet written included. The connection is ours (connBusy) until it
	// is written.
	clear(r.pending)
	r.pending, r.pendingN = r.pending[:0], 0
	r.wrote = r.sent
	r.busyFrom = peerReceived
	s.connBusy = true
	var bufs net.Buffers
	if prefix != nil {
		bufs = append(bufs, prefix(r.received))
	}
	bufs = append(bufs, r.out.buffers()...)
	s.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(s.cfg.ConnectionWriteTimeout))
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	s.stats.writes.Add(1)
	s.stats.bytesSent.Add(uint64(total)) // before the write: see Stats
	_, err := bufs.WriteTo(c.conn)
	s.mu.Lock()
	s.connBusy = false
	if err != nil {
		if !s.connLost(c, fmt.Errorf("resending after resume: %w", err)) {
			s.shutdown(fmt.Errorf("writing to connection: %w", err), false)
		}
		return nil // the next attempt starts from connLost
	}
	s.trimOut()
	s.log.Info("braid: session resumed", "remote", c.conn.RemoteAddr(), "resent_bytes", r.sent-peerReceived)
	if s.kaTimer != nil && s.cfg.KeepAliveInterval > 0 {
		s.kaTimer.Reset(min(s.cfg.KeepAliveInterval, s.cfg.KeepAliveTimeout))
	}
	r.swapping = false // before the wake: the writer may go on (or flush and stop)
	r.swapped.Broadcast()
	s.wake()
	for _, st := range s.streams {
		st.notify()
	}
	return nil
}

// ErrNotResumed: a resumable session lost its connection and could not
// get it back: ResumeTimeout passed, or the server no longer knows the
// session. The session's calls fail with an error wrapping it (and
// matching net.ErrClosed).
var ErrNotResumed = errors.New("braid: session could not be resumed")

// pendingMax: a batch may be filled while fewer than this many bytes of
// copied batches wait for the connection, so that the writer goroutine
// finds the next write ready while the filler waits to be scheduled. On
// 64-stream bulk (medians of 8–12 interleaved runs, resumption on ÷ off)
// 128 KiB gave 0.86, 256 KiB 0.95–1.04, 512 KiB 0.99–1.04; echo behind
// bulk did not get slower. More is also more a small message may wait
// behind.
var pendingMax = 512 << 10
