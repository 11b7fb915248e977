package sim

import (
	"errors"
	"fmt"
)

// Kind sorts a failed boot by the step and the way it failed; the summary
// counts failures by kind.
type Kind string

// Kinds of failure.
const (
	KindDHCPTimeout Kind = "dhcp-timeout" // no answer after every retry
	KindDHCPNak     Kind = "dhcp-nak"     // the REQUEST was refused
	KindDHCPReply   Kind = "dhcp-reply"   // an answer that does not fit the question
	KindDHCPAddr    Kind = "dhcp-address" // a registered node got another address than its own
	KindTFTPTimeout Kind = "tftp-timeout" // a block never came
	KindTFTP        Kind = "tftp"         // an error packet or a protocol fault
	KindHTTP        Kind = "http"         // a request failed or was answered with an error
	KindScript      Kind = "script"       // a script that is not what the node expected
	KindArtifact    Kind = "artifact"     // a kernel or initrd the script named could not be fetched
	KindEvent       Kind = "event"        // a boot event was refused
	KindCanceled    Kind = "canceled"     // the run was stopped while the node booted
	KindOther       Kind = "other"
)

// StepError is a failure of one step of a node's boot.
type StepError struct {
	Kind Kind
	Err  error
}

func (e *StepError) Error() string { return string(e.Kind) + ": " + e.Err.Error() }

func (e *StepError) Unwrap() error { return e.Err }

func stepErr(kind Kind, format string, args ...any) error {
	return &StepError{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of err: that of the StepError it wraps, else
// KindOther.
func KindOf(err error) Kind {
	var s *StepError
	if errors.As(err, &s) {
		return s.Kind
	}
	return KindOther
}
