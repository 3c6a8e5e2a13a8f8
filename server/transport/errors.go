package transport

import "errors"

var (
	// ErrTimeout is returned by Do and Notify when a confirmable message was retransmitted
	// MaxRetransmit times without an acknowledgement, or when a separate response did not
	// arrive within MAX_TRANSMIT_WAIT of the first transmission.
	ErrTimeout = errors.New("transport: no response from peer")

	// ErrReset is returned by Do and Notify when the peer answered with a Reset message
	// (it does not know the exchange, or it cancels an observation).
	ErrReset = errors.New("transport: peer reset the exchange")

	// ErrClosed is returned by the Endpoint's methods after Close, and by exchanges
	// in flight when the Endpoint closes.
	ErrClosed = errors.New("transport: endpoint closed")

	// ErrBodyTooLarge is returned by Do when a Block2 response grows beyond MaxBodySize, or
	// when the peer refuses a Block1 upload as too large (4.13) with no smaller block size to try.
	ErrBodyTooLarge = errors.New("transport: body too large")

	// ErrBadOption is returned by Do when the peer's response carries a critical option lwota
	// does not recognise, or one that is invalid (RFC 7252 §5.4.1: such a response must be
	// rejected, never taken as an answer). Retrying will not help: the peer answers a
	// retransmission with the same response.
	ErrBadOption = errors.New("transport: response carries an unrecognised critical option")

	// ErrNoSession is returned by Do and Notify on a DTLS Endpoint when the device has no live
	// DTLS session (it never connected, its session idled out or it closed it): lwota cannot
	// start a handshake towards a device, so the device must talk first.
	ErrNoSession = errors.New("transport: no DTLS session with peer")
)
