package admin

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// Error is an error with the HTTP status the admin API answers it with.
// Validation problems are 400, unknown keys and plans 404, conflicts 409.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Err: fmt.Errorf(format, args...)}
}

// errNoStore answers the key, plan and usage endpoints of an admin API
// built without a store.
var errNoStore = &Error{Status: http.StatusServiceUnavailable, Err: errors.New("no store configured")}

// StatusOf is the HTTP status for err: an *Error's own, else the one that
// matches the store's sentinel errors, else 500.
func StatusOf(err error) int {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
