package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// CreateKey stores k; store.ErrExists if its Name or Hash is taken, also
// by another replica at the same moment.
func (s *Store) CreateKey(ctx context.Context, k store.Key) error {
	if k.Name == "" || k.Hash == "" {
		return errors.New("creating key: name and hash must not be empty")
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encoding key %q: %w", k.Name, err)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	res, err := createKeyScript.Run(ctx, s.client, []string{s.keysKey, s.keyHashKey}, k.Name, k.Hash, b).Int()
	if err := s.checkOp(ctx, err, "creating key %q", k.Name); err != nil {
		return err
	}
	switch res {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("creating key %q: name %w", k.Name, store.ErrExists)
	case 2:
		return fmt.Errorf("creating key %q: value %w", k.Name, store.ErrExists)
	}
	return fmt.Errorf("creating key %q: unexpected script result %d", k.Name, res)
}

// UpdateKey replaces the key named k.Name; store.ErrNotFound if there is
// none. The stored Hash is kept whatever k.Hash says, because the hash
// index must keep pointing at the key.
func (s *Store) UpdateKey(ctx context.Context, k store.Key) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	// The second attempt runs with the stored hash, which never changes,
	// so two attempts always suffice.
	for range 2 {
		b, err := json.Marshal(k)
		if err != nil {
			return fmt.Errorf("encoding key %q: %w", k.Name, err)
		}
		res, err := updateKeyScript.Run(ctx, s.client, []string{s.keysKey}, k.Name, k.Hash, b).Slice()
		if err := s.checkOp(ctx, err, "updating key %q", k.Name); err != nil {
			return err
		}
		if len(res) != 2 {
			return fmt.Errorf("updating key %q: unexpected script result %v", k.Name, res)
		}
		status, _ := res[0].(int64)
		switch status {
		case 0:
			return fmt.Errorf("updating key %q: %w", k.Name, store.ErrNotFound)
		case 1:
			return nil
		case 2:
			stored, _ := res[1].(string)
			if stored == "" || stored == k.Hash {
				return fmt.Errorf("updating key %q: stored key has no usable hash", k.Name)
			}
			k.Hash = stored
			continue
		}
		return fmt.Errorf("updating key %q: unexpected script result %v", k.Name, res)
	}
	return fmt.Errorf("updating key %q: hash changed while updating", k.Name)
}

// KeyByHash finds a key by the hex SHA-256 of its value.
func (s *Store) KeyByHash(ctx context.Context, hash string) (store.Key, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	b, err := keyByHashScript.Run(ctx, s.client, []string{s.keysKey, s.keyHashKey}, hash).Text()
	if errors.Is(err, redis.Nil) {
		return store.Key{}, fmt.Errorf("looking up key by hash: %w", store.ErrNotFound)
	}
	if err := s.check(ctx, "looking up key by hash", err); err != nil {
		return store.Key{}, err
	}
	return decodeKey(b)
}

// KeyByName finds a key by name.
func (s *Store) KeyByName(ctx context.Context, name string) (store.Key, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	b, err := s.client.HGet(ctx, s.keysKey, name).Result()
	if errors.Is(err, redis.Nil) {
		s.up()
		return store.Key{}, fmt.Errorf("looking up key %q: %w", name, store.ErrNotFound)
	}
	if err := s.checkOp(ctx, err, "looking up key %q", name); err != nil {
		return store.Key{}, err
	}
	return decodeKey(b)
}

// ListKeys returns every key, revoked ones included, sorted by name.
func (s *Store) ListKeys(ctx context.Context) ([]store.Key, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	all, err := s.client.HGetAll(ctx, s.keysKey).Result()
	if err := s.check(ctx, "listing keys", err); err != nil {
		return nil, err
	}
	keys := make([]store.Key, 0, len(all))
	for _, b := range all {
		k, err := decodeKey(b)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b store.Key) int { return strings.Compare(a.Name, b.Name) })
	return keys, nil
}

func decodeKey(b string) (store.Key, error) {
	var k store.Key
	if err := json.Unmarshal([]byte(b), &k); err != nil {
		return store.Key{}, fmt.Errorf("decoding stored key: %w", err)
	}
	return k, nil
}

// PutPlan creates or replaces the plan p.Name.
func (s *Store) PutPlan(ctx context.Context, p store.Plan) error {
	if p.Name == "" {
		return errors.New("storing plan: name must not be empty")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding plan %q: %w", p.Name, err)
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err = s.client.HSet(ctx, s.plansKey, p.Name, b).Err()
	return s.checkOp(ctx, err, "storing plan %q", p.Name)
}

// Plan finds a plan by name.
func (s *Store) Plan(ctx context.Context, name string) (store.Plan, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	b, err := s.client.HGet(ctx, s.plansKey, name).Result()
	if errors.Is(err, redis.Nil) {
		s.up()
		return store.Plan{}, fmt.Errorf("looking up plan %q: %w", name, store.ErrNotFound)
	}
	if err := s.checkOp(ctx, err, "looking up plan %q", name); err != nil {
		return store.Plan{}, err
	}
	return decodePlan(b)
}

// ListPlans returns every plan, sorted by name.
func (s *Store) ListPlans(ctx context.Context) ([]store.Plan, error) {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	all, err := s.client.HGetAll(ctx, s.plansKey).Result()
	if err := s.check(ctx, "listing plans", err); err != nil {
		return nil, err
	}
	plans := make([]store.Plan, 0, len(all))
	for _, b := range all {
		p, err := decodePlan(b)
		if err != nil {
			return nil, err
		}
		plans = append(plans, p)
	}
	slices.SortFunc(plans, func(a, b store.Plan) int { return strings.Compare(a.Name, b.Name) })
	return plans, nil
}

// DeletePlan removes a plan; store.ErrNotFound if there is none.
func (s *Store) DeletePlan(ctx context.Context, name string) error {
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	n, err := s.client.HDel(ctx, s.plansKey, name).Result()
	if err := s.checkOp(ctx, err, "deleting plan %q", name); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("deleting plan %q: %w", name, store.ErrNotFound)
	}
	return nil
}

func decodePlan(b string) (store.Plan, error) {
	var p store.Plan
	if err := json.Unmarshal([]byte(b), &p); err != nil {
		return store.Plan{}, fmt.Errorf("decoding stored plan: %w", err)
	}
	return p, nil
}
