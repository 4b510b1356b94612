// Package memory is a store.Store that keeps everything in the process's
// memory: keys, plans, throttle buckets and counters. Nothing survives a
// restart, and replicas do not share it; use it for tests and the
// quickstart, bolt for a single durable gateway and redis for several.
package memory
