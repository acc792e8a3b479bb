//go:build !linux || 386

package rawio

const isLinux = false
