package modelconfig

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed call: the status code and message, and the google.rpc details the daemon
// sends (AIP-193). Every call fails with an ErrorInfo whose Reason (UPPER_SNAKE, e.g.
// SCOPE_REQUIRED) says what went wrong and whose Metadata carries the values in the message;
// INVALID_ARGUMENT may add FieldViolations, FAILED_PRECONDITION PreconditionViolations.
//
// Errors that did not come from the daemon (a deadline, a dropped connection) have a Code and a
// Message but no Reason.
type Error struct {
	Code                   codes.Code
	Reason                 string
	Domain                 string
	Metadata               map[string]string
	Message                string
	FieldViolations        []*errdetails.BadRequest_FieldViolation
	PreconditionViolations []*errdetails.PreconditionFailure_Violation

	status *status.Status
}

func (e *Error) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s: %s", CodeName(e.Code), e.Message)
	}
	return fmt.Sprintf("%s %s: %s", CodeName(e.Code), e.Reason, e.Message)
}

// GRPCStatus lets status.FromError and status.Code read an *Error like the error it came from.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// FromError converts an error of a gRPC call to *Error (nil stays nil, an *Error is returned as
// it is). Use it on errors of a connection made without Dial.
func FromError(err error) error {
	if err == nil {
		return nil
	}
	var typed *Error
	if errors.As(err, &typed) {
		return typed
	}
	st, _ := status.FromError(err) // not a status: UNKNOWN with err's text
	typed = &Error{Code: st.Code(), Message: st.Message(), Metadata: map[string]string{}, status: st}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			typed.Reason, typed.Domain = d.GetReason(), d.GetDomain()
			for key, value := range d.GetMetadata() {
				typed.Metadata[key] = value
			}
		case *errdetails.BadRequest:
			typed.FieldViolations = append(typed.FieldViolations, d.GetFieldViolations()...)
		case *errdetails.PreconditionFailure:
			typed.PreconditionViolations = append(typed.PreconditionViolations, d.GetViolations()...)
		}
	}
	return typed
}

// CodeName is a status code's name as in the gRPC specification and other languages
// (INVALID_ARGUMENT; Go's codes.Code.String says InvalidArgument).
func CodeName(code codes.Code) string {
	if int(code) < len(codeNames) {
		return codeNames[code]
	}
	return fmt.Sprintf("CODE(%d)", uint32(code))
}

var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}
