//go:build !msrpgw_testhooks

package main

import (
	"log/slog"
	"os"
)

// holdStartup is where a binary built for the daemon tests holds start-up (hold_testhooks.go); the daemon
// itself never holds.
func holdStartup(string, *slog.Logger, <-chan os.Signal) os.Signal { return nil }
