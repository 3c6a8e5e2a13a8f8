package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/lwota/lwota/server/apitoken"
	"github.com/lwota/lwota/server/audit"
	"github.com/lwota/lwota/storage/sqlstore"
)

// setupAuth opens the token manager and the audit log over store and makes sure an administrator
// can get in: --admin-token is created unless it exists; without it, a database with no token at
// all gets an admin token whose secret is logged once, clearly marked.
func setupAuth(ctx context.Context, cfg serveConfig, store *sqlstore.Store, logger *slog.Logger) (*apitoken.Manager, *audit.Log, error) {
	tokens := apitoken.New(store, logger)
	auditLog := audit.New(store)
	tok, secret, err := tokens.Bootstrap(ctx, strings.TrimSpace(cfg.AdminToken))
	if err != nil {
		return nil, nil, fmt.Errorf("admin token: %w", err)
	}
	if tok == nil {
		return tokens, auditLog, nil
	}
	if secret != "" {
		logger.Warn("FIRST START: created an admin API token; it is shown only this once, keep it: "+
			"send it as 'Authorization: Bearer <token>', or set LWOTA_TOKEN for the lwota CLI",
			"admin_token", secret, "token_id", tok.ID)
	} else {
		logger.Info("admin API token of --admin-token created", "token_id", tok.ID)
	}
	err = auditLog.Record(ctx, audit.Entry{Actor: audit.ActorSystem, Action: "token.create", Target: "token:" + tok.ID,
		Detail: map[string]string{"name": tok.Name, "role": string(tok.Role)}})
	if err != nil {
		return nil, nil, fmt.Errorf("audit: %w", err)
	}
	return tokens, auditLog, nil
}

// requireToken guards h (/metrics with --metrics-token-required) with a bearer token of any role.
func requireToken(tokens *apitoken.Manager, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, secret, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || secret == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lwota"`)
			http.Error(w, "an API token is required", http.StatusUnauthorized)
			return
		}
		if _, err := tokens.Authenticate(r.Context(), strings.TrimSpace(secret)); err != nil {
			if !errors.Is(err, apitoken.ErrUnauthenticated) {
				http.Error(w, "token check failed", http.StatusInternalServerError)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="lwota", error="invalid_token"`)
			http.Error(w, "the API token is unknown or revoked", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
