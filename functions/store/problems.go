package store

import (
	"errors"
	"net/http"

	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
)

// ProblemOf is how every function answers an error from a request's work:
// a problem it already is, a validation error (422 with its fields), a
// store Error by kind, or ErrBusy. Anything else returns nil: a fault of
// the server's, which the caller logs and answers as unavailable.
func ProblemOf(err error) *problem.Problem {
	var (
		p  *problem.Problem
		ve *model.ValidationError
		se *Error
	)
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &ve):
		pr := problem.New(http.StatusUnprocessableEntity, "invalid", "Invalid input", ve.Error())
		pr.Errors = ve.Problems
		return pr
	case errors.As(err, &se):
		var pr *problem.Problem
		switch se.Kind {
		case KindNotFound:
			pr = problem.New(http.StatusNotFound, "not-found", "Not found", se.Msg)
		case KindConflict:
			pr = problem.New(http.StatusConflict, "conflict", "Conflict", se.Error())
		case KindInvalid:
			pr = problem.New(http.StatusUnprocessableEntity, "invalid", "Invalid input", se.Error())
		case KindPrecondition:
			pr = problem.New(http.StatusPreconditionFailed, "stale", "Changed since read", se.Msg)
		case KindUnauthorized:
			pr = problem.New(http.StatusUnauthorized, "unauthorized", "Not logged in", se.Msg)
		default:
			pr = problem.New(http.StatusInternalServerError, "internal", "Internal error", se.Msg)
		}
		if se.Field != "" {
			pr.Errors = []model.FieldProblem{{Field: se.Field, Message: se.Msg}}
		}
		return pr
	case errors.Is(err, ErrBusy):
		return problem.New(http.StatusServiceUnavailable, "busy", "Busy", err.Error())
	}
	return nil
}
