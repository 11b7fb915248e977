package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/herd-hpc/herd/functions/auth"
	"github.com/herd-hpc/herd/functions/model"
	"github.com/herd-hpc/herd/functions/objstore"
	"github.com/herd-hpc/herd/functions/problem"
	"github.com/herd-hpc/herd/functions/store"
)

// provisionRoutes serves what decides how nodes provision themselves:
// disk layouts, the config plugins' settings, and the consoles of boot
// sessions.
func provisionRoutes(a *API) {
	register(a, resource[model.Layout]{
		kind: "layout", path: "layouts",
		name:    func(l *model.Layout) *string { return &l.Name },
		rev:     func(l *model.Layout) int64 { return l.Revision },
		get:     a.store.GetLayout,
		create:  a.store.CreateLayout,
		replace: a.store.ReplaceLayout,
		del:     a.store.DeleteLayout,
		list: func(r *http.Request, opts store.ListOptions) (any, error) {
			return a.store.ListLayouts(r.Context(), opts)
		},
	})
	a.handle("GET "+Prefix+"/plugins", a.plugins)
	a.handle("GET "+Prefix+"/plugins/{name}", a.plugin)
	a.handle("PUT "+Prefix+"/plugins/{name}", a.putPlugin)
	a.handle("GET "+Prefix+"/boot/sessions/{id}/console", a.console)
}

func (a *API) plugins(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	items, err := a.store.ListPlugins(r.Context())
	if err != nil {
		return err
	}
	return reply(w, http.StatusOK, model.Page[model.PluginSettings]{Items: items, Total: len(items)})
}

func (a *API) plugin(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	p, err := a.store.GetPlugin(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(p.Revision))
	return reply(w, http.StatusOK, p)
}

// putPlugin replaces a plugin's settings whole (there is one object per
// plugin, always: PUT creates and replaces).
func (a *API) putPlugin(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	rev, err := ifMatch(r)
	if err != nil {
		return err
	}
	var p model.PluginSettings
	if err := decode(r, &p); err != nil {
		return err
	}
	if err := sameName("plugin", &p.Name, r.PathValue("name")); err != nil {
		return err
	}
	out, err := a.store.PutPlugin(r.Context(), id.Actor(), p, rev)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(out.Revision))
	return reply(w, http.StatusOK, out)
}

// objectGetter is the part of the object store console reads need;
// *objstore.Store, which the server sets as Objects, has it.
type objectGetter interface {
	Get(ctx context.Context, key string) (io.ReadCloser, int64, error)
}

// console answers a session's console output after a cursor (from the
// start without one), waiting up to wait for more like the audit follow.
// While the session's stream is in Redis it is read from there; after,
// from the archive the boot function wrote when the session ended.
func (a *API) console(w http.ResponseWriter, r *http.Request, _ auth.Identity) error {
	ctx := r.Context()
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	cur, err := store.ParseConsoleCursor(r.URL.Query().Get("after"))
	if err != nil {
		p := problem.New(http.StatusBadRequest, "bad-query", "Bad query", "after: "+err.Error())
		p.Errors = []model.FieldProblem{{Field: "after", Message: err.Error()}}
		return p
	}
	sess, err := a.store.BootSession(ctx, id)
	gone := store.IsKind(err, store.KindNotFound)
	if err != nil && !gone {
		return err
	}
	ended := gone || sess.State == model.BootDone || sess.State == model.BootFailed
	live, err := a.store.ConsoleLive(ctx, id)
	if err != nil {
		return err
	}
	if live || !ended {
		if ended {
			wait = 0
		}
		data, next, err := a.store.ConsoleAfter(ctx, id, cur, wait)
		if err != nil {
			return err
		}
		if !ended && len(data) == 0 {
			// The wait may have ended on the session's last event.
			if now, err := a.store.BootSession(ctx, id); err == nil {
				ended = now.State == model.BootDone || now.State == model.BootFailed
			} else if store.IsKind(err, store.KindNotFound) {
				ended = true
			}
		}
		return reply(w, http.StatusOK, model.ConsoleChunk{Session: id, Data: data, Next: next.String(), Ended: ended && len(data) == 0})
	}
	data, err := a.archivedConsole(ctx, id)
	if errors.Is(err, objstore.ErrNotFound) {
		if gone {
			return problem.New(http.StatusNotFound, "not-found", "Not found",
				fmt.Sprintf("boot session %s does not exist and left no console", id))
		}
		data, err = []byte{}, nil
	}
	if err != nil {
		return err
	}
	off := min(cur.Offset, int64(len(data)))
	return reply(w, http.StatusOK, model.ConsoleChunk{Session: id, Data: data[off:],
		Next: store.ArchiveCursor(int64(len(data))).String(), Ended: true})
}

func (a *API) archivedConsole(ctx context.Context, id string) ([]byte, error) {
	obj, ok := a.Objects.(objectGetter)
	if !ok {
		return nil, problem.New(http.StatusServiceUnavailable, "unavailable", "No object store",
			"the console was archived but this API has no object store to read it from")
	}
	rc, _, err := obj.Get(ctx, store.ConsoleArchiveKey(id))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, store.MaxConsoleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read archived console of boot session %s: %w", id, err)
	}
	return b, nil
}
