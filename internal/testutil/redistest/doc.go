// Package redistest runs a real redis-server on a loopback port for tests,
// and lets a test stop, kill and restart it to exercise what happens to a
// gateway when Redis goes away.
//
//	srv := redistest.Start(t) // skips when redis-server is missing, fails when CI=true
//	st, _ := redisstore.New(redisstore.Options{Addrs: []string{srv.Addr()}})
//	srv.Kill()                // operations now fail with store.ErrUnavailable
//	srv.Restart()             // same port, empty data set
//
// StartTLS runs a server whose port speaks TLS only, with a certificate the
// test generates, to check that clients verify Redis as they should.
package redistest
