//go:build !race

package topology

// raceEnabled reports whether the test binary was built with -race. The
// topology test skips then: it exercises the drawbridge binary it builds
// (without -race) and real processes in namespaces, so the race detector
// would only watch the test's own small client code while doubling CI's
// time spent building namespaces, waiting for DNS caches and nginx reloads.
// The gateway's shared state is raced by its own packages' tests.
const raceEnabled = false
