package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// TestRun runs the program: every client gets all its answers.
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
	for _, name := range []string{"ada", "grace", "alan"} {
		for _, n := range []string{"#1", "#2", "#3"} {
			if want := name + " " + n + ": hello " + name; !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	}
}
