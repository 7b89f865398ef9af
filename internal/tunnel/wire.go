package tunnel

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The tunnel's own messages ride at the start of braid streams. Every
// stream begins with one header message from the side that opened it and
// one reply from the other side; after that the stream carries the
// forwarded connection's bytes untouched. A message is a 2-byte
// big-endian length followed by that many bytes of JSON. JSON keeps the
// messages readable in a capture and easy to extend; they are small and
// sent once per connection, so their cost does not show next to the
// session's framing.

// protocolVersion is the tunnel protocol spoken in hello. A server
// refuses a client whose version it does not know, with a message.
const protocolVersion = 1

// maxMessage bounds one header message. A peer sending a larger one ends
// that stream with an error; nothing is allocated for it first.
const maxMessage = 8 << 10

// Stream kinds, in openMsg.Kind.
const (
	kindLocal   = "L" // client -> server: dial Addr on the server side
	kindDynamic = "D" // client -> server: SOCKS5 CONNECT, dial Addr on the server side
	kindRemote  = "R" // server -> client: a connection arrived on -R forward ID
)

// helloMsg opens the control stream, the first stream a client opens.
type helloMsg struct {
	Version  int         `json:"version"`
	Token    string      `json:"token"`
	Instance string      `json:"instance"` // random per client process: a reconnect replaces the same instance's old session
	Agent    string      `json:"agent,omitempty"`
	Remote   []remoteReq `json:"remote,omitempty"`
}

// remoteReq asks the server to listen for an -R forward.
type remoteReq struct {
	ID   int    `json:"id"`
	Spec string `json:"spec"` // as the user wrote it, for messages
	Bind string `json:"bind"` // host to bind on the server; "" = loopback
	Port int    `json:"port"` // 0 = server picks
}

// helloReply answers helloMsg.
type helloReply struct {
	OK     bool           `json:"ok"`
	Code   string         `json:"code,omitempty"` // "auth", "version", "busy", "limit"
	Error  string         `json:"error,omitempty"`
	User   string         `json:"user,omitempty"`
	Remote []remoteResult `json:"remote,omitempty"`
}

// remoteResult says where an -R forward listens, or why it does not.
type remoteResult struct {
	ID     int    `json:"id"`
	Listen string `json:"listen,omitempty"`
	Error  string `json:"error,omitempty"`
}

// openMsg opens a forwarded connection.
type openMsg struct {
	Kind string `json:"kind"`
	Addr string `json:"addr,omitempty"` // L, D: HOST:PORT to dial on the server
	ID   int    `json:"id,omitempty"`   // R: the forward's ID from remoteReq
}

// openReply answers openMsg once the target is connected or has failed.
type openReply struct {
	OK    bool   `json:"ok"`
	Code  string `json:"code,omitempty"` // "denied", "refused", "unreachable", "limit", "unknown"
	Error string `json:"error,omitempty"`
}

// errMessageTooLarge reports a header over maxMessage.
var errMessageTooLarge = errors.New("tunnel message too large")

// writeMsg writes v as one message.
func writeMsg(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(body) > maxMessage {
		return errMessageTooLarge
	}
	buf := make([]byte, 2+len(body))
	binary.BigEndian.PutUint16(buf, uint16(len(body)))
	copy(buf[2:], body)
	_, err = w.Write(buf)
	return err
}

// readMsg reads one message into v. It reads exactly the message's bytes,
// never more, so what follows on the stream is left for the caller.
func readMsg(r io.Reader, v any) error {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > maxMessage {
		return fmt.Errorf("%w: %d bytes (limit %d)", errMessageTooLarge, n, maxMessage)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("malformed tunnel message: %w", err)
	}
	return nil
}
