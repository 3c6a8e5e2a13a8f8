package api

import (
	"fmt"
	"net/http"
	"sync"
)

// streamCounter counts the open event streams, in all and per API token, so that a client
// cannot hold an unbounded number of goroutines and subscriptions open.
type streamCounter struct {
	mu      sync.Mutex
	total   int
	byToken map[string]int
}

// acquire takes a slot for token's new stream, or answers 429 too_many_streams naming the
// limit that is full. release must be called once for every successful acquire.
func (s *streamCounter) acquire(token string, perToken, total int) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.byToken[token] >= perToken:
		return &apiError{Status: http.StatusTooManyRequests, Code: codeTooManyStreams,
			Message: fmt.Sprintf("this API token already has %d open event streams; close one first", perToken)}
	case s.total >= total:
		return &apiError{Status: http.StatusTooManyRequests, Code: codeTooManyStreams,
			Message: fmt.Sprintf("the server already serves %d event streams; try again later", total)}
	}
	if s.byToken == nil {
		s.byToken = map[string]int{}
	}
	s.byToken[token]++
	s.total++
	return nil
}

func (s *streamCounter) release(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.byToken[token]--; s.byToken[token] <= 0 {
		delete(s.byToken, token)
	}
}

// open returns the number of open streams.
func (s *streamCounter) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
