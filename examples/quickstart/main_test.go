package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// TestREADME checks that the README's library quick start is this
// program, byte for byte, so what a reader pastes into main.go builds
// and runs.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Library quick start")
	if !ok {
		t.Fatal(`README.md has no "## Library quick start" section`)
	}
	_, block, ok := strings.Cut(section, "```go\n")
	if !ok {
		t.Fatal("the quick start section has no ```go block")
	}
	block, _, ok = strings.Cut(block, "```\n")
	if !ok {
		t.Fatal("the quick start's ```go block is not closed")
	}
	if block != string(src) {
		t.Fatal("README.md's library quick start differs from examples/quickstart/main.go; copy main.go into the README")
	}
}

// TestRun runs the program and checks its three answers.
func TestRun(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	main()
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	for _, want := range []string{"hello -> HELLO", "many streams -> MANY STREAMS", "one connection -> ONE CONNECTION"} {
		if !bytes.Contains(out, []byte(want+"\n")) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
