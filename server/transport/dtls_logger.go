package transport

import "github.com/pion/logging"

// quietDTLSLoggers is the LoggerFactory lwota gives pion: every scope gets a logger that drops
// everything. pion asks for a logger once per connection, i.e. once per handshake, and
// pion/logging's DefaultLoggerFactory answers even a disabled level with a new logger built from
// five log.Loggers and five formatted prefixes (a dozen allocations per handshake, ~2% of the
// server's CPU per handshake in lwota bench dtls). lwota reports handshake failures itself
// (dtlsLink.handshakeFailed), so pion's own log stays off, as it was with LogLevelDisabled.
type quietDTLSLoggers struct{}

// dtlsLoggerFactory is the LoggerFactory for every pion server lwota starts.
func dtlsLoggerFactory() logging.LoggerFactory { return quietDTLSLoggers{} }

func (quietDTLSLoggers) NewLogger(string) logging.LeveledLogger { return quietDTLSLogger{} }

// quietDTLSLogger is a logging.LeveledLogger that drops everything; it has no fields, so handing
// it out allocates nothing.
type quietDTLSLogger struct{}

func (quietDTLSLogger) Trace(string)          {}
func (quietDTLSLogger) Tracef(string, ...any) {}
func (quietDTLSLogger) Debug(string)          {}
func (quietDTLSLogger) Debugf(string, ...any) {}
func (quietDTLSLogger) Info(string)           {}
func (quietDTLSLogger) Infof(string, ...any)  {}
func (quietDTLSLogger) Warn(string)           {}
func (quietDTLSLogger) Warnf(string, ...any)  {}
func (quietDTLSLogger) Error(string)          {}
func (quietDTLSLogger) Errorf(string, ...any) {}
