package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a config file, at a line of it.
type Problem struct {
	// File is the config path as given to Load.
	File string
	// Line is 1-based; 0 means the problem concerns the file as a whole.
	Line int
	Msg  string
}

// String formats p as "FILE:LINE: msg", or "FILE: msg" when Line is 0.
func (p Problem) String() string {
	if p.Line <= 0 {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Error is every problem found in a config file, ordered by line.
type Error struct {
	Problems []Problem
	// err is the underlying cause when the file could not be read at all.
	err error
}

// Error returns the problems one per line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the I/O error behind an unreadable config file, so callers
// can test for [io/fs.ErrNotExist]; it is nil otherwise.
func (e *Error) Unwrap() error { return e.err }
