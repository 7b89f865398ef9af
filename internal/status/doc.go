// Package status draws a live status block for a braid tunnel on a
// terminal: one header line with the link state, RTT and reconnects, then
// one line per forward with its open connections and its upload and
// download rates.
//
// The block sits at the bottom of the terminal and is redrawn in place
// with ANSI escapes (cursor up, clear line). Log lines written through
// [Status.Writer] are printed above it: the writer erases the block,
// writes the log line and draws the block again, so the two never garble
// each other. [Render] builds the lines and is pure, for tests.
package status
