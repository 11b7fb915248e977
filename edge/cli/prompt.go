package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// fdOf returns the file descriptor behind a stream, if it is a file.
func fdOf(v any) (uintptr, bool) {
	f, ok := v.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	return f.Fd(), true
}

// isTerminal reports whether a stream is an interactive terminal. Buffers
// in tests never are.
func isTerminal(v any) bool {
	fd, ok := fdOf(v)
	return ok && isTerminalFd(fd)
}

// input returns stdin, buffered once so that several prompts in one run do
// not lose what a previous read buffered.
func (a *app) input() *bufio.Reader {
	if a.in == nil {
		a.in = bufio.NewReader(a.stdin)
	}
	return a.in
}

// readLine reads one line from stdin without its line ending. It gives up
// when ctx ends, so an interrupt is not stuck behind a blocked read.
func (a *app) readLine(ctx context.Context) (string, error) {
	type result struct {
		line string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		line, err := a.input().ReadString('\n')
		if errors.Is(err, io.EOF) && line != "" {
			err = nil
		}
		done <- result{strings.TrimRight(line, "\r\n"), err}
	}()
	select {
	case r := <-done:
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// prompt asks a question on stderr and reads the answer from stdin.
func (a *app) prompt(ctx context.Context, question string) (string, error) {
	fmt.Fprint(a.stderr, question)
	return a.readLine(ctx)
}

// promptSecret asks for a password on the terminal without echoing it.
func (a *app) promptSecret(ctx context.Context, question string) (string, error) {
	fd, ok := fdOf(a.stdin)
	if !ok {
		return "", errors.New("stdin is not a terminal")
	}
	restore, err := echoOff(fd)
	if err != nil {
		return "", err
	}
	defer restore()
	fmt.Fprint(a.stderr, question)
	line, err := a.readLine(ctx)
	fmt.Fprintln(a.stderr)
	return line, err
}

// confirm asks a yes/no question; anything but y or yes is no.
func (a *app) confirm(ctx context.Context, question string) (bool, error) {
	answer, err := a.prompt(ctx, question+" [y/N] ")
	if err != nil {
		return false, err
	}
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes", nil
}
