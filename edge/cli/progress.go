package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress draws one self-overwriting line on a terminal:
//
//	set [#########...........] 12/40 node012
//
// A nil *progress draws nothing, which is what pipes and files get.
type progress struct {
	w     io.Writer
	verb  string
	total int
	done  int
	now   func() time.Time
	last  time.Time
	name  string // the last one done
	shown bool
}

const progressBarWidth = 24

// newProgress returns a progress line for total operations, or nil when
// stderr is not a terminal or the work is too small to need one.
func (a *app) newProgress(verb string, total int) *progress {
	if total < 2 || !isTerminal(a.stderr) {
		return nil
	}
	return &progress{w: a.stderr, verb: verb, total: total, now: time.Now}
}

// step records one finished operation and redraws at most ten times a
// second, and always for the last one.
func (p *progress) step(name string) {
	if p == nil {
		return
	}
	p.done++
	p.name = name
	if t := p.now(); p.done == p.total || t.Sub(p.last) >= 100*time.Millisecond {
		p.last = t
		p.draw()
	}
}

// redraw shows the line again after clear.
func (p *progress) redraw() {
	if p == nil || p.shown {
		return
	}
	p.draw()
}

func (p *progress) draw() {
	name := p.name
	filled := progressBarWidth * p.done / p.total
	bar := strings.Repeat("#", filled) + strings.Repeat(".", progressBarWidth-filled)
	if len(name) > 24 {
		name = name[:23] + "…"
	}
	fmt.Fprintf(p.w, "\r\033[K%s [%s] %d/%d %s", p.verb, bar, p.done, p.total, name)
	p.shown = true
}

// clear removes the line so other output can be written; the next step
// draws it again.
func (p *progress) clear() {
	if p == nil || !p.shown {
		return
	}
	fmt.Fprint(p.w, "\r\033[K")
	p.shown = false
}

// batchWorkers is how many requests a batch keeps in flight: enough to hide
// round trips, few enough not to crowd the API.
const batchWorkers = 4

// each runs fn for every name with a few requests in flight. Each result is
// printed in the order of names as soon as the ones before it are done: the
// line fn returns on stdout, or the error on stderr. It returns the names
// that failed.
func (a *app) each(ctx context.Context, verb string, names []string, fn func(ctx context.Context, i int, name string) (string, error)) []string {
	type result struct {
		line string
		err  error
		done bool
	}
	results := make([]result, len(names))
	finished := make(chan int)
	var wg sync.WaitGroup
	sem := make(chan struct{}, batchWorkers)
	go func() {
		for i, name := range names {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				var r result
				if err := ctx.Err(); err != nil {
					r.err = fail(verb+" "+name, err)
				} else {
					r.line, r.err = fn(ctx, i, name)
				}
				results[i].line, results[i].err = r.line, r.err
				finished <- i
			}()
		}
		wg.Wait()
		close(finished)
	}()

	bar := a.newProgress(verb, len(names))
	var failed []string
	next := 0
	for i := range finished {
		results[i].done = true
		bar.step(names[i])
		for next < len(names) && results[next].done {
			r := results[next]
			bar.clear()
			switch {
			case r.err != nil:
				failed = append(failed, names[next])
				if ctx.Err() == nil { // after an interrupt the caller says so once
					a.report(r.err)
				}
			case r.line != "":
				fmt.Fprintln(a.stdout, r.line)
			}
			next++
		}
		if next < len(names) {
			bar.redraw()
		}
	}
	bar.clear()
	return failed
}

// set shows done of total with a label, for work measured in bytes rather
// than in operations.
func (p *progress) set(done, total int, label string) {
	if p == nil {
		return
	}
	p.done, p.total, p.name = done, max(total, 1), label
	if t := p.now(); done >= total || t.Sub(p.last) >= 100*time.Millisecond {
		p.last = t
		p.draw()
	}
}
