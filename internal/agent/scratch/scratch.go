// Package scratch keeps encoders' scratch space between uses until its
// owner says it is no longer wanted.
//
// Unlike sync.Pool, whose objects survive one garbage collection in its
// victim cache, a drained Pool holds nothing at once: the agent gives an
// idle desktop's memory back with a single collection.
package scratch

import "sync"

// Pool holds free objects of type T. The zero value is an empty pool;
// Get makes a new T when it has none.
type Pool[T any] struct {
	mu   sync.Mutex
	free []*T
}

// Get returns a free object, or a new zero one.
func (p *Pool[T]) Get() *T {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		v := p.free[n-1]
		p.free = p.free[:n-1]
		return v
	}
	return new(T)
}

// Put returns v to the pool.
func (p *Pool[T]) Put(v *T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, v)
}

// Drain forgets every free object.
func (p *Pool[T]) Drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = nil
}
