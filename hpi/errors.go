package hpi

import "errors"

// Errors returned by the Domain, named after the SaErrorT they stand for.
// They are wrapped with %w; test with errors.Is.
var (
	// ErrInvalidResource is SA_ERR_HPI_INVALID_RESOURCE: no such resource.
	ErrInvalidResource = errors.New("no such resource")
	// ErrNotPresent is SA_ERR_HPI_NOT_PRESENT: no such RDR, alarm or entry.
	ErrNotPresent = errors.New("not present")
	// ErrCapability is SA_ERR_HPI_CAPABILITY: the resource lacks the
	// capability the call needs.
	ErrCapability = errors.New("resource lacks the capability")
	// ErrInvalidRequest is SA_ERR_HPI_INVALID_REQUEST: not allowed in the
	// current state.
	ErrInvalidRequest = errors.New("request not valid in the current state")
	// ErrInvalidParams is SA_ERR_HPI_INVALID_PARAMS: a malformed argument.
	ErrInvalidParams = errors.New("invalid parameters")
	// ErrReadOnly is SA_ERR_HPI_READ_ONLY.
	ErrReadOnly = errors.New("read-only")
	// ErrDuplicate is SA_ERR_HPI_DUPLICATE: the same instrument twice.
	ErrDuplicate = errors.New("duplicate")
	// ErrUnsubscribed is returned by Receive after Unsubscribe.
	ErrUnsubscribed = errors.New("subscription closed")
)

// OverflowError is returned by Subscription.Receive in place of the events
// that were dropped because the subscriber's queue was full: Missed events
// were published between the event received before it and the one received
// after it.
type OverflowError struct {
	Missed uint64
}

func (e *OverflowError) Error() string {
	return "hpi: subscription queue overflow: " + uitoa(e.Missed) + " events missed"
}

func uitoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
