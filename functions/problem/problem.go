// Package problem writes RFC 9457 problem details, the one error format of
// every herd HTTP answer.
package problem

import (
	"encoding/json"
	"net/http"

	"github.com/herd-hpc/herd/functions/model"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// TypeBase prefixes every problem type; the last part is stable and can be
// matched on by scripts.
const TypeBase = "https://herd.dev/problems/"

// Problem is an RFC 9457 problem document.
type Problem struct {
	Type     string               `json:"type"`
	Title    string               `json:"title"`
	Status   int                  `json:"status"`
	Detail   string               `json:"detail,omitempty"`
	Instance string               `json:"instance,omitempty"`
	Errors   []model.FieldProblem `json:"errors,omitempty"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Title + ": " + p.Detail
	}
	return p.Title
}

// New makes a problem of the given short type ("not-found", "conflict", …).
func New(status int, typ, title, detail string) *Problem {
	return &Problem{Type: TypeBase + typ, Title: title, Status: status, Detail: detail}
}

// Write sends p as the answer to r.
func Write(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
