// Package frame encodes and decodes braid frames, exactly as
// proto/braid.proto defines them.
//
// On the wire every frame is a base-128 varint length prefix followed by
// the protobuf encoding of one braid.v1.Frame message (the "body"). This
// package writes and reads that encoding with
// google.golang.org/protobuf/encoding/protowire, never proto.Marshal, so
// the hot path does not allocate: a DATA frame is written as a small
// header (AppendDataHeader) followed by the caller's payload slice, and
// Reader decodes into a reused Frame and a reused buffer.
//
// The package has no goroutines, no locks and does no I/O of its own
// beyond the io.Reader handed to NewReader. Values of its types are not
// safe for concurrent use unless their documentation says so.
//
// Buffer ownership: a *Frame returned by Reader.ReadFrame, and every slice
// in it (Payload, Debug, Settings.Magic), are valid only until the next
// call to ReadFrame, unless the caller takes the buffer with
// Reader.Detach. Parse makes the same promise about the body it is given:
// the Frame's slices alias it.
package frame
