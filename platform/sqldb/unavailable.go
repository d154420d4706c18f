package sqldb

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// IsUnavailable reports an error that says the database could not be reached, rather than that it refused a
// query: no connection could be made (refused, reset, unreachable host, server starting or shutting down, too
// many connections, failed authentication: pgx's *pgconn.ConnectError), a connection lost on the way
// (driver.ErrBadConn, pgconn.ErrConnClosed, a reset or broken socket, Postgres's connection-exception and
// shutdown SQLSTATEs, and a bare io.ErrUnexpectedEOF, which is how pgx reports a connection that ended while a
// statement with arguments ran), or no answer before the context's deadline (a pool exhausted until the
// request's deadline, an unreachable host). A query the server answered with an error (syntax, constraint,
// serialization) is not, nor is SQLite's "database is locked" after its busy timeout: the database answered,
// and retrying the same request is no better an idea later than now. platform/web answers these 503
// unavailable with Retry-After; it is their only reader, and it has already answered a request body that
// ended early (the other source of an unexpected EOF) 400.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return unavailableState(pe.Code)
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// unavailableState reports the SQLSTATEs of a server that cannot serve the session: class 08 (connection
// exception), 53300 (too many connections) and 57P01-57P03 (shutting down, crashed, starting up).
func unavailableState(code string) bool {
	return strings.HasPrefix(code, "08") || code == "53300" ||
		code == "57P01" || code == "57P02" || code == "57P03"
}
