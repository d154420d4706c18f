package main

import "github.com/tamarack-ai/tamarack/frontend"

// wireUI serves the embedded web UI at / (index.html for client-side routes; never for /api, /healthz,
// /readyz or /metrics, which fall through to the problem 404).
func wireUI(e *env) { frontend.Register(e.app) }
