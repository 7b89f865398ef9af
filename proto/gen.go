// Package braidpb holds the Go code generated from braid.proto, the frame
// schema of the braid protocol. The hot path does not use it (package frame
// encodes with protowire); it is the reference that tests compare against
// and a convenience for tools in other languages' style.
package braidpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative braid.proto
// Generated with protoc 3.21.12 (libprotoc 3.21.12, Debian protobuf-compiler)
// and protoc-gen-go v1.36.12.
