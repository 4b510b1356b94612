//go:build race

package topology

// raceEnabled is true in a -race build; see norace_test.go.
const raceEnabled = true
