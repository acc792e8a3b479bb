package gateway

import (
	"hash/maphash"
	"sync"
)

// SessionTable holds the gateway sessions by correlation key. It sits behind an interface so that several
// gateway nodes can later share one directory (SPEC §9); the in-memory table is the single-node default.
type SessionTable interface {
	// Get returns the session for key, or nil.
	Get(key string) *Session
	// GetOrCreate returns the live session for key, or installs create()'s result when there is none or the
	// existing one is retired (ending, or its peer said BYE). created reports which happened.
	GetOrCreate(key string, create func() *Session) (s *Session, created bool)
	// Put installs s for its key and returns the session it replaced, if any.
	Put(s *Session) (old *Session)
	// Delete removes s, only if it is still the session installed for its key.
	Delete(s *Session) bool
	// Range calls f for every session until f returns false.
	Range(f func(s *Session) bool)
	// Len returns the number of sessions.
	Len() int
}

const tableShards = 64

// memTable is a sharded in-memory SessionTable: no lock is held across network I/O, and the shards keep
// contention low under many concurrent MESSAGEs.
type memTable struct {
	seed   maphash.Seed
	shards [tableShards]tableShard
}

type tableShard struct {
	mu sync.Mutex
	m  map[string]*Session
}

func newMemTable() *memTable {
	t := &memTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*Session)
	}
	return t
}

func (t *memTable) shard(key string) *tableShard {
	return &t.shards[maphash.String(t.seed, key)%tableShards]
}

func (t *memTable) Get(key string) *Session {
	sh := t.shard(key)
	sh.mu.Lock()
	s := sh.m[key]
	sh.mu.Unlock()
	return s
}

func (t *memTable) GetOrCreate(key string, create func() *Session) (*Session, bool) {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s := sh.m[key]; s != nil && !s.retired() {
		return s, false
	}
	s := create()
	if s == nil {
		return nil, false
	}
	sh.m[key] = s
	return s, true
}

func (t *memTable) Put(s *Session) *Session {
	sh := t.shard(s.key)
	sh.mu.Lock()
	old := sh.m[s.key]
	sh.m[s.key] = s
	sh.mu.Unlock()
	if old == s {
		return nil
	}
	return old
}

func (t *memTable) Delete(s *Session) bool {
	sh := t.shard(s.key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m[s.key] != s {
		return false
	}
	delete(sh.m, s.key)
	return true
}

func (t *memTable) Range(f func(s *Session) bool) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		list := make([]*Session, 0, len(sh.m))
		for _, s := range sh.m {
			list = append(list, s)
		}
		sh.mu.Unlock()
		for _, s := range list {
			if !f(s) {
				return
			}
		}
	}
}

func (t *memTable) Len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
