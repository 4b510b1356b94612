package redisstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/drawbridge-gw/drawbridge/internal/store"
	"github.com/drawbridge-gw/drawbridge/internal/store/storetest"
	"github.com/drawbridge-gw/drawbridge/internal/testutil/redistest"
)

// startCluster runs a one-node Redis Cluster owning every slot: enough
// for the client to speak the cluster protocol, and for the server to
// refuse scripts whose keys are in different slots (CROSSSLOT).
func startCluster(t *testing.T) *redistest.Server {
	t.Helper()
	srv := redistest.StartArgs(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	rc := rawClient(t, srv.Addr())
	if err := rc.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := rc.ClusterInfo(ctx).Result()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return srv
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster not ready: %q, %v", info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clusterAddrs lists the one node twice: two addresses make New use the
// Cluster client.
func clusterAddrs(srv *redistest.Server) []string {
	return []string{srv.Addr(), srv.Addr()}
}

func TestClusterConformance(t *testing.T) {
	srv := startCluster(t)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++
		s, err := New(Options{Addrs: clusterAddrs(srv), Prefix: fmt.Sprintf("{cluster%d}:", n), Timeout: testTimeout, Logger: quiet})
		if err != nil {
			t.Fatalf("New(): got %v, want nil", err)
		}
		if _, ok := s.client.(*redis.ClusterClient); !ok {
			t.Fatalf("New() with two addresses: got a %T, want a *redis.ClusterClient", s.client)
		}
		return s
	})
}

// TestClusterNeedsHashTag shows why New insists on a hash tag: without
// one, the multi-key scripts fail on a real cluster.
func TestClusterNeedsHashTag(t *testing.T) {
	srv := startCluster(t)
	// New refuses such a prefix; build the store by hand to see the
	// failure New prevents.
	s := open(t, Options{Addrs: clusterAddrs(srv)})
	s.prefix, s.keysKey, s.keyHashKey = "gw:", "gw:keys", "gw:keyhash"
	err := s.CreateKey(ctx, testKey("acme", "acme"))
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") || errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CreateKey(acme) on Cluster without a hash tag: got %v, want a CROSSSLOT error", err)
	}
}
