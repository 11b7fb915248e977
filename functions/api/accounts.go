package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/problem"
)

func accounts(a *API) {
	a.handle("GET "+Prefix+"/users", func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		users, err := a.store.ListUsers(r.Context())
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, model.Page[model.User]{Items: users, Total: len(users)})
	})
	a.handle("POST "+Prefix+"/users", func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		var req model.NewUser
		if err := decode(r, &req); err != nil {
			return err
		}
		hash, err := auth.HashPassword(req.Password)
		if err != nil {
			return &model.ValidationError{Problems: []model.FieldProblem{{Field: "password", Message: err.Error()}}}
		}
		u, err := a.store.CreateUser(r.Context(), id.Actor(), req.Name, req.Role, hash)
		if err != nil {
			return err
		}
		return reply(w, http.StatusCreated, u)
	})
	a.handle("DELETE "+Prefix+"/users/{name}", func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		name := r.PathValue("name")
		if name == id.User.Name {
			return problem.New(http.StatusConflict, "conflict", "Conflict", "you cannot delete your own account")
		}
		if err := a.store.DeleteUser(r.Context(), id.Actor(), name); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	a.handle("GET "+Prefix+"/tokens", func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		tokens, err := a.store.ListTokens(r.Context(), id.User.Name)
		if err != nil {
			return err
		}
		return reply(w, http.StatusOK, model.Page[model.Token]{Items: tokens, Total: len(tokens)})
	})
	// Read-only users may make tokens for their own read-only scripts.
	a.mux.HandleFunc("POST "+Prefix+"/tokens", a.asUser(func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		var req model.NewToken
		if err := decode(r, &req); err != nil {
			return err
		}
		var ttl time.Duration
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil || d <= 0 {
				return &model.ValidationError{Problems: []model.FieldProblem{{Field: "ttl", Message: fmt.Sprintf("%q is not a duration such as 720h", req.TTL)}}}
			}
			ttl = d
		}
		if req.Name == "" {
			return &model.ValidationError{Problems: []model.FieldProblem{{Field: "name", Message: "is required: say what the token is for"}}}
		}
		tokenID := auth.NewID()
		secret := "ht_" + tokenID + "_" + auth.NewSecret("")
		t, err := a.store.CreateToken(r.Context(), id.Actor(), id.User.Name, req.Name, tokenID, secret, ttl)
		if err != nil {
			return err
		}
		return reply(w, http.StatusCreated, model.CreatedToken{Token: t, Secret: secret})
	}))
	a.Routes = append(a.Routes, "POST "+Prefix+"/tokens")
	a.mux.HandleFunc("DELETE "+Prefix+"/tokens/{id}", a.asUser(func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		if err := a.store.DeleteToken(r.Context(), id.Actor(), id.User.Name, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	a.Routes = append(a.Routes, "DELETE "+Prefix+"/tokens/{id}")
}

// asUser is handle without the admin requirement, for a user's own tokens.
func (a *API) asUser(h func(http.ResponseWriter, *http.Request, auth.Identity) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := a.auth.Authenticate(r)
		if err != nil {
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthorized", "Not logged in", err.Error()))
			return
		}
		if id.Cookie && !auth.SameOrigin(r) {
			problem.Write(w, r, problem.New(http.StatusForbidden, "cross-origin", "Cross-origin request refused",
				"a request from another site tried to use your herd login"))
			return
		}
		if err := h(w, r, id); err != nil && !errors.Is(err, http.ErrAbortHandler) {
			a.fail(w, r, err)
		}
	}
}
