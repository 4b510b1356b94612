// Package storetest is the conformance suite every store.Store backend
// must pass: a backend's test calls Run with a function that opens a
// fresh, empty store.
package storetest
