package main

// wireUI serves the web UI at / (replaced when the frontend lands).
func wireUI(e *env) {}
