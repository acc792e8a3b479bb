package cpim

import "errors"

// Sentinel errors, wrapped with the detail of what was wrong.
var (
	// ErrMalformed: a CPIM document or an IMDN body that cannot be read.
	ErrMalformed = errors.New("malformed CPIM")
	// ErrNoMessageID: an IMDN cannot be built for a message that carries no imdn.Message-ID to refer to.
	ErrNoMessageID = errors.New("no imdn.Message-ID")
	// ErrUnknownEncoding: the encapsulated entity has a Content-Transfer-Encoding this package cannot undo.
	ErrUnknownEncoding = errors.New("unknown Content-Transfer-Encoding")
)
