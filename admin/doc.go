// Package admin is msrpgw's operations surface: the admin HTTP API, the OpenSIPS-compatible JSON-RPC endpoint
// (/mi), Prometheus metrics, webhooks, and the client behind `msrpgw sessions ...`.
package admin
