//go:build msrpgw_testhooks

package main

import (
	"log/slog"
	"os"
)

// holdStartup holds start-up at step when holdStartupEnv names it (the daemon tests use this to signal it at a
// known point rather than race it), and returns the signal that ended the hold.
func holdStartup(step string, log *slog.Logger, sig <-chan os.Signal) os.Signal {
	if os.Getenv(holdStartupEnv) != step {
		return nil
	}
	log.Info("start-up held for a test", "step", step)
	return <-sig
}
